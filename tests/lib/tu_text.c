/*
 * tu_text: see tu_text.h.
 */
#include "tu_text.h"

#include <errno.h>
#include <stdlib.h>

bool tu_parse_unix_time(const char *text, time_t *out)
{
    char *end = NULL;
    long long v;

    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v > TU_UNIX_TIME_MAX)
        return false;
    *out = (time_t)v;
    return true;
}
