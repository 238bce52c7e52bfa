/* queue_print.h - how `correio queue` shows queue entries: mailq's text,
 * postqueue -j's JSON lines, qshape's table of recipient domains by age,
 * and a message's header section.
 *
 * Everything a stage sends is text from outside (addresses, reasons,
 * headers): the text forms make it printable, the JSON form escapes it.
 */
#ifndef CORREIO_CTL_QUEUE_PRINT_H
#define CORREIO_CTL_QUEUE_PRINT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "wire.h"

/* queue_print_header - the column titles above queue_print_entry lines. */
void queue_print_header(FILE *out);

/* queue_print_entry - one message, mailq style: its row (queue id with
 * "*" when active, "!" when on hold), the reason and next attempt in
 * parentheses, then the recipients indented. */
void queue_print_entry(FILE *out, const QueueEntry *e);

/* queue_print_json - one message as one line of JSON, with the field
 * names of Postfix's `postqueue -j` where it has them; node may be NULL. */
void queue_print_json(FILE *out, const QueueEntry *e, const char *node);

/* queue_print_json_string - s as a JSON string, escaped ("" for NULL);
 * for the other commands' --json output too. */
void queue_print_json_string(FILE *out, const char *s);

/* queue_print_headers - a message's header section (as "queue-show"
 * sends it): lines as they are, other control bytes as '?'. */
void queue_print_headers(FILE *out, const char *text);

/* Recipients not yet final, counted by domain and age (qshape). */
typedef struct queue_shape queue_shape;

/* queue_shape_new - an empty table; ages are measured from now_us. */
queue_shape *queue_shape_new(uint64_t now_us);
/* queue_shape_add - count the recipients of e that are not final. */
void queue_shape_add(queue_shape *s, const QueueEntry *e);
/* queue_shape_print - the table (sorting what was added): a TOTAL row,
 * then one row per domain, most recipients first; as one JSON object
 * when json. */
void queue_shape_print(FILE *out, queue_shape *s, bool json);
void queue_shape_free(queue_shape **s);

#endif
