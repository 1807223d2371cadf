/* local_win.c - local endpoints on Windows (named pipes). */
#include "local.h"
#ifdef _WIN32
#endif
