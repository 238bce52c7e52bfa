/* status_code.c - RFC 3463 enhanced status codes (see status_code.h). */
#include <string.h>
#include "status_code.h"

size_t status_code_len(const char *s)
{
    const char *p = s;

    if (p[0] < '0' || p[0] > '9' || p[1] != '.')
        return 0;
    p += 2;
    for (int part = 0; part < 2; part++) {
        size_t n = strspn(p, "0123456789");
        if (n < 1 || n > 3)
            return 0;
        p += n;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    return *p == ' ' || *p == '\0' ? (size_t)(p - s) : 0;
}
