/* html.h - HTML as a reader sees it: the visible text of a text/html
 * part, the links and images it carries (<a href>, <img src>,
 * background=..., cid: references), the common character entities, and a
 * scan of plain text for bare URLs.  Input is UTF-8 (mime.c converts
 * first); output text is UTF-8.  One pass, no allocation per tag, never
 * fails: broken HTML gives whatever text a tolerant reader would see.
 */
#ifndef CORREIO_HTML_H
#define CORREIO_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

/* html_uri_fn - called for each link (image false) or image (true) with
 * the attribute value, entities decoded, not NUL-terminated. */
typedef void (*html_uri_fn)(void *ctx, const char *url, size_t len, bool image);

/* html_to_text - append the visible text of html[0..len) to text: tags
 * dropped, <script>/<style>/<title> contents skipped, white space runs
 * collapsed to one space, block elements (p, br, div, tr, li, h1-h6 ...)
 * ending a line, entities decoded.  uri (may be NULL) gets a/area href,
 * iframe/frame src, form action as links, img src, input src and
 * background attributes as images. */
void html_to_text(const char *html, size_t len, buf_t *text, html_uri_fn uri, void *ctx);

/* html_entity - decode the entity at s[0..n) (s[0] == '&'), appending
 * its UTF-8 to out.  Returns the bytes consumed, 0 when s does not start
 * a known entity (the caller then keeps the '&' as text). */
size_t html_entity(const char *s, size_t n, buf_t *out);

/* html_scan_urls - call uri (image false) for every bare URL in text:
 * http://, https://, ftp:// and www. prefixes at a word start, up to
 * white space or a delimiter, trailing punctuation dropped. */
void html_scan_urls(const char *text, size_t len, html_uri_fn uri, void *ctx);

#endif
