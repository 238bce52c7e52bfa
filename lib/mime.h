/* mime.h - a message taken apart once for every test that looks inside
 * it: the header fields (unfolded), and the MIME tree walked to its
 * leaves, each leaf decoded (quoted-printable, base64) and, for text,
 * converted to UTF-8 from its declared charset (iconv), HTML turned into
 * its visible text with the links and images it carries.
 *
 * Everything is bounded: nesting depth, number of parts, header size,
 * decoded bytes per part and in all; a message that goes past a bound is
 * parsed as far as the bound and flagged (mime_msg.truncated), never
 * rejected, never a crash.  Broken input (bad boundaries, bad encodings,
 * unknown charsets) gives flags the tests can score, not errors.
 */
#ifndef CORREIO_MIME_H
#define CORREIO_MIME_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mime_header {
    char  *name;            /* as written, e.g. "Subject" */
    char  *value;           /* unfolded raw value (CRLF+WSP joined), RFC 2047 not decoded */
    char  *decoded;         /* RFC 2047 encoded-words decoded to UTF-8 */
} mime_header;

typedef struct mime_part {
    char   *type;           /* "text/plain" lower-cased; "text/plain" when absent */
    char   *charset;        /* declared charset lower-cased, NULL if none */
    char   *filename;       /* from Content-Disposition/Content-Type name, NULL if none */
    bool    attachment;     /* Content-Disposition: attachment */
    bool    inline_image;   /* an image/... part referenced by Content-ID or inline */
    char   *content_id;     /* without <>, NULL if none */
    char   *text;           /* text parts: decoded, UTF-8 (HTML: its visible text) */
    size_t  text_len;
    char   *raw;            /* the decoded bytes before charset conversion */
    size_t  raw_len;
    bool    bad_encoding;   /* invalid base64/QP */
    bool    bad_charset;    /* unknown charset or bytes invalid in it */
    bool    eight_bit_no_charset;   /* non-ASCII bytes with no declared charset */
    unsigned alt_id;        /* nonzero: inside the multipart/alternative numbered
                             * alt_id (the innermost one); parts with the same
                             * alt_id are alternatives of each other */
} mime_part;

typedef struct mime_uri {
    char *url;              /* as found (href, src, or a bare URL in text) */
    char *host;             /* lower-cased host name or address, "" if none */
    bool  image;            /* an <img src>, i.e. an external image when http(s) */
} mime_uri;

typedef struct mime_msg {
    mime_header *headers;   size_t n_headers;
    mime_part   *parts;     size_t n_parts;     /* the leaves, in order */
    mime_uri    *uris;      size_t n_uris;      /* links and images of every part, deduplicated */
    bool         has_html, has_text;            /* a text/html / text/plain leaf */
    bool         truncated;                     /* a bound was hit */
    bool         bad_structure;                 /* missing boundary, unterminated multipart */
    unsigned     depth;                         /* deepest nesting seen */
} mime_msg;

/* The bounds (a message past one is parsed up to it and flagged
 * truncated): */
#define MIME_MAX_DEPTH        20                  /* nested multipart/message levels */
#define MIME_MAX_PARTS        1000                /* leaves */
#define MIME_MAX_HEADER_BYTES (256 * 1024)        /* top-level header section */
#define MIME_MAX_HEADERS      1000                /* top-level header fields */
#define MIME_MAX_DECODED      (4 * 1024 * 1024)   /* decoded bytes of all leaves */
#define MIME_MAX_URIS         1000                /* distinct links and images */

/* mime_parse - take data (the whole message, header and body) apart into
 * *m.  Never fails; free with mime_free. */
void mime_parse(const char *data, size_t len, mime_msg *m);
void mime_free(mime_msg *m);

/* mime_header_get - the nth (0-based) field called name (any case), or
 * NULL. */
const mime_header *mime_header_get(const mime_msg *m, const char *name, size_t nth);

#endif
