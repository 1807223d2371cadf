/* Compiles ovl.h alone, as C, with -Wall -Wextra -pedantic -Werror. */
#include <ovl.h>
int ovl_header_test_c(void) { return OVL_EINVAL + (int)sizeof(ovl_completion); }
