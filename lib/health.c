/* health.c - the stage's readiness check (see health.h). */
#include <stdio.h>

#include "health.h"

static health_check_fn health_fn;
static void *health_ctx;

void health_set_ready_check(health_check_fn fn, void *ctx)
{
    health_fn = fn;
    health_ctx = ctx;
}

bool health_ready(char *why, size_t size)
{
    if (size)
        why[0] = 0;
    if (health_fn == NULL)
        return true;
    if (health_fn(health_ctx, why, size))
        return true;
    if (size && why[0] == 0)
        snprintf(why, size, "not ready");
    return false;
}
