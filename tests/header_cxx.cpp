// Compiles ovl.h alone, as C++, with -Wall -Wextra -pedantic -Werror.
#include <ovl.h>
int ovl_header_test_cxx() { return OVL_EINVAL + static_cast<int>(sizeof(ovl_completion)); }
