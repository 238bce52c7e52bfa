/* test_mime_bad.c - broken MIME: MIME_BAD_STRUCTURE (a multipart without
 * its boundary or its close delimiter, a malformed Content-Type, invalid
 * base64 or quoted-printable: what mail programs do not write) and
 * MIME_TRUNCATED (the message went past one of mime.h's bounds: parts,
 * nesting, header size, decoded size). */
#include "scoring.h"

bool test_mime_bad_structure(const scoring_msg *msg, void *ctx)
{
    const mime_msg *m = msg->mime;
    (void)ctx;

    if (m->bad_structure)
        return true;
    for (size_t i = 0; i < m->n_parts; i++)
        if (m->parts[i].bad_encoding)
            return true;
    return false;
}

bool test_mime_truncated(const scoring_msg *msg, void *ctx)
{
    (void)ctx;
    return msg->mime->truncated;
}
