// The header with its implementation as a private (W4A8_STATIC) copy,
// compiled as C++; built with -Werror.
#define W4A8_STATIC
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "smoke.h"

extern "C" int compile_cpp_smoke(void) { return smoke(); }
