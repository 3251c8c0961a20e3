/* The header with its implementation as a private (W4A8_STATIC) copy,
   compiled as C99; built with -Werror. */
#define W4A8_STATIC
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "smoke.h"

int compile_c_smoke(void) { return smoke(); }
