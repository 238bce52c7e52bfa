/* test_html_image.c - images in HTML: HTML_EXTERNAL_IMAGE (IceWarp's "E":
 * <img src="http://...">, fetched when the mail is read, which tells the
 * sender the address is live and carries the text spam filters cannot
 * read) and HTML_EMBEDDED_IMAGE (<img src="cid:...">, an image shipped
 * inside the message, the other way to put the offer in a picture). */
#include <strings.h>
#include "scoring.h"

bool test_html_external_image(const scoring_msg *msg, void *ctx)
{
    const mime_msg *m = msg->mime;
    (void)ctx;

    for (size_t i = 0; i < m->n_uris; i++) {
        const char *u = m->uris[i].url;
        if (m->uris[i].image && (strncasecmp(u, "http://", 7) == 0
                                 || strncasecmp(u, "https://", 8) == 0
                                 || (u[0] == '/' && u[1] == '/')))
            return true;
    }
    return false;
}

bool test_html_embedded_image(const scoring_msg *msg, void *ctx)
{
    const mime_msg *m = msg->mime;
    (void)ctx;

    for (size_t i = 0; i < m->n_uris; i++)
        if (m->uris[i].image && strncasecmp(m->uris[i].url, "cid:", 4) == 0)
            return true;
    return false;
}
