/* iocp.c - the Windows I/O completion port backend. */
#include "ovl_internal.h"

#ifdef _WIN32
#error "the IOCP backend is not written yet"
#else
const ovl__backend *const ovl__backend_iocp = NULL;
#endif
