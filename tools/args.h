/* args.h - the command-line values of w4a8's programs, read strictly.

   args_size(s, lo, hi, &out)  1 and *out = s when s is all decimal digits
                               and lo <= s <= hi; else 0, *out untouched. */
#ifndef W4A8_ARGS_H
#define W4A8_ARGS_H
#include <stdlib.h>

static int args_size(const char *s, size_t lo, size_t hi, size_t *out) {
    char *end;
    unsigned long long v;
    if (!s || *s < '0' || *s > '9') return 0;
    v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return 0;
    *out = (size_t)v;
    return 1;
}

#endif
