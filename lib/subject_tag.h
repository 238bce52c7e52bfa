/* subject_tag.h - the spam tag in the Subject ("[SPAM] Hello"), written
 * by delivery's two writers (the Maildir file and the SMTP/LMTP client)
 * for each recipient whose Recipient.subject_tag is set.
 *
 * The client's bytes are never copied or changed: subject_tag_plan says
 * where the tag goes and what to insert there, subject_tag_pieces gives
 * the writer the pieces to write one after another (the kept ranges of
 * header_skip.h with the insert spliced in), each pointing into the
 * message or into the plan.
 */
#ifndef CORREIO_SUBJECT_TAG_H
#define CORREIO_SUBJECT_TAG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>
#include "header_skip.h"

#define SUBJECT_TAG_MAX 200      /* longest tag written; a longer one is ignored */

/* What to insert where.  text is owned (free with subject_tag_plan_free),
 * NULL when nothing is to be written. */
typedef struct subject_tag_plan {
    size_t at;       /* offset in the message the text goes before */
    char  *text;
    size_t len;
} subject_tag_plan;

/* subject_tag_find - the first Subject field (any case, at a line start,
 * "Subject :" too) of the header section of msg[0, len) (CRLF or LF
 * lines, up to the first empty line): *off and *n are its value, from
 * just after the colon to the end of its last line (its continuation
 * lines included, the final line break not).  false when there is none. */
bool subject_tag_find(const void *msg, size_t len, size_t *off, size_t *n);

/* subject_tag_plan_make - where tag goes into msg[0, len):
 *   - a Subject field: after its colon and the white space (folding
 *     included) that follows it, so "Subject: =?utf-8?B?...?=" becomes
 *     "Subject: [SPAM] =?utf-8?B?...?="; the tag's trailing spaces are
 *     replaced by exactly one space before the old Subject (none when it
 *     is empty), and a space is added when the colon has none after it;
 *   - a Subject that already starts with the tag (less its trailing white
 *     space): nothing;
 *   - no Subject field: the field "Subject: TAG\r\n" (trailing white
 *     space of the tag trimmed) at offset 0, before the client's first
 *     field.
 * tag must be 1 to SUBJECT_TAG_MAX printable ASCII characters with
 * something besides white space; anything else (a CR or LF that would
 * make another header field, 8-bit bytes) writes nothing.  Returns true
 * when p->text is to be written. */
bool subject_tag_plan_make(const void *msg, size_t len, const char *tag,
                           subject_tag_plan *p);
void subject_tag_plan_free(subject_tag_plan *p);

/* subject_tag_pieces - the bytes to write: the ranges keep[0, n_keep) of
 * msg with p's text (p may be NULL, or have no text) inserted at p->at,
 * as an iovec array (malloc'ed into *out, the caller frees it; NULL when
 * 0 pieces).  The insert goes into the range holding p->at; at offset 0
 * it goes first even when the first range starts later; when p->at is
 * in no kept range (its field is dropped) it is left out.  Returns the
 * number of pieces. */
size_t subject_tag_pieces(const void *msg, const header_range *keep, size_t n_keep,
                          const subject_tag_plan *p, struct iovec **out);

#endif
