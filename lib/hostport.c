/* hostport.c - listener specifications (see hostport.h). */
#include <string.h>
#include "hostport.h"

bool hostport_split(const char *spec, char *host, size_t size, const char **port)
{
    const char *start = spec, *end;

    if (spec[0] == '[') {
        end = strchr(spec, ']');
        if (end == NULL || end[1] != ':')
            return false;
        start = spec + 1;
        *port = end + 2;
    } else {
        end = strrchr(spec, ':');
        if (end == NULL)
            return false;
        *port = end + 1;
    }
    if ((size_t)(end - start) >= size)
        return false;
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';
    return true;
}
