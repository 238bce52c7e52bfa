/* test_gtube.c - the GTUBE test (Generic Test for Unsolicited Bulk Email,
 * spamassassin.apache.org/gtube): a fixed 68-byte string anywhere in the
 * message marks it as spam, so operators can check that scoring works.
 * SpamAssassin gives it 1000 points; so do we (see scoring.c). */
#include <string.h>
#include "scoring.h"

static const char gtube_string[] =
    "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/* test_gtube - is the GTUBE string in the client's bytes?  The whole
 * message is searched (headers too: a Subject: with GTUBE counts, as a
 * SpamAssassin body rule would see it). */
bool test_gtube(const scoring_msg *msg, void *ctx)
{
    (void)ctx;
    const Envelope *env = msg->env;
    if (env->body.data == NULL || env->body.len < sizeof gtube_string - 1)
        return false;
    return memmem(env->body.data, env->body.len,
                  gtube_string, sizeof gtube_string - 1) != NULL;
}
