/* main.c - correio-router: takes scored envelopes from the classifier
 * (PULL), routes every recipient (routing.c) and pushes the envelope on
 * to delivery.  It owns nothing yet: an envelope lost here is sent again
 * by the ingress. */
#include "pass_stage.h"
#include "routing.h"
#include "stage.h"

/* router_transform - every recipient routed; routing reads the current
 * configuration per envelope, so a reload needs nothing more. */
static uint8_t *router_transform(void *ctx, const Envelope *env, size_t *len)
{
    stage_t *st = ctx;

    return routing_route_envelope(env, st->cfg, len);
}

int main(int argc, char **argv)
{
    static const pass_stage_ops ops = {
        .input_param = "router_endpoint",
        .output_param = "delivery_endpoint",
        .admin_param = "router_admin_endpoint",
        .transform = router_transform,
    };
    stage_t st;

    stage_start(&st, "router", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);
    pass_stage_run(&st, &ops, &st);
    stage_finish(&st);
    return 0;
}
