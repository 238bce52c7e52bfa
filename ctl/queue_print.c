/* queue_print.c - the looks of `correio queue`: mailq's listing, JSON
 * lines as postqueue -j writes them, qshape's table, a header section.
 *
 * JSON strings are escaped here, byte by byte: quotes, backslashes and
 * control characters as JSON wants them, valid UTF-8 kept, and every
 * byte that is not part of valid UTF-8 (a stage passes on whatever a
 * client sent) replaced by U+FFFD, so that any JSON parser reads the
 * line.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "queue_print.h"
#include "xalloc.h"

#define SHAPE_BUCKETS 10     /* 5 10 20 ... 1280 minutes, then older */
static const unsigned shape_minutes[SHAPE_BUCKETS - 1] = {5, 10, 20, 40, 80, 160, 320, 640, 1280};

/* ------------------------------------------------------------ helpers */

/* when - "Sun Nov 23 08:11:00" for microseconds since the epoch. */
static const char *when(char *dst, size_t size, uint64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    if (us == 0 || localtime_r(&t, &tm) == NULL || strftime(dst, size, "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(dst, size, "-");
    return dst;
}

static const char *rcpt_state(Correio__RcptState s)
{
    switch (s) {
    case CORREIO__RCPT_STATE__RCPT_PENDING:
        return "pending";
    case CORREIO__RCPT_STATE__RCPT_DELIVERED:
        return "delivered";
    case CORREIO__RCPT_STATE__RCPT_DEFERRED:
        return "deferred";
    case CORREIO__RCPT_STATE__RCPT_FAILED:
        return "failed";
    case CORREIO__RCPT_STATE__RCPT_QUARANTINED:
        return "quarantine";
    default:
        return "?";
    }
}

static bool rcpt_final(Correio__RcptState s)
{
    return s == CORREIO__RCPT_STATE__RCPT_DELIVERED || s == CORREIO__RCPT_STATE__RCPT_FAILED;
}

/* clean - stage text made printable and bounded for the terminal. */
static const char *clean(char *dst, size_t size, const char *s)
{
    return log_printable(dst, size, s ? s : "", s ? strlen(s) : 0);
}

/* ------------------------------------------------------------ mailq */

void queue_print_header(FILE *out)
{
    fprintf(out, "%-17s  %-8s  %9s  %-19s  %s\n", "QUEUE-ID", "STATE", "SIZE", "ARRIVAL", "SENDER");
}

void queue_print_entry(FILE *out, const QueueEntry *e)
{
    char t[64], id[64], idmark[70], state[32], sender[300], text[600];
    const char *mark = strcmp(e->state, "hold") == 0 ? "!"
                     : strcmp(e->state, "active") == 0 ? "*" : "";

    /* mailq's "*" (active) or "!" (hold) after the id, in the column gap */
    snprintf(idmark, sizeof(idmark), "%s%s", clean(id, sizeof(id), e->queue_id), mark);
    fprintf(out, "%-18s %-8s  %9llu  %-19s  %s\n", idmark,
            clean(state, sizeof(state), e->state), (unsigned long long)e->size,
            when(t, sizeof(t), e->arrival),
            e->sender[0] ? clean(sender, sizeof(sender), e->sender) : "<>");
    if (e->reason[0] || e->next_attempt) {
        fprintf(out, "    (%s", e->reason[0] ? clean(text, sizeof(text), e->reason) : "");
        if (e->next_attempt)
            fprintf(out, "%snext attempt %s", e->reason[0] ? "; " : "",
                    when(t, sizeof(t), e->next_attempt));
        fprintf(out, ")\n");
    }
    for (size_t i = 0; i < e->n_rcpt; i++) {
        const Recipient *r = e->rcpt[i];

        fprintf(out, "    %s  %s", clean(sender, sizeof(sender), r->address), rcpt_state(r->state));
        if (r->attempts)
            fprintf(out, "  attempts=%u", r->attempts);
        if (r->status_text[0])
            fprintf(out, "  (%s)", clean(text, sizeof(text), r->status_text));
        fprintf(out, "\n");
    }
}

void queue_print_headers(FILE *out, const char *text)
{
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    size_t len = strlen((const char *)p);

    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\r' && (i + 1 == len || p[i + 1] == '\n'))
            continue;
        fputc(p[i] == '\n' || p[i] == '\t' || (p[i] >= 0x20 && p[i] != 0x7f) ? p[i] : '?', out);
    }
    if (len > 0 && p[len - 1] != '\n')
        fputc('\n', out);
}

/* ------------------------------------------------------------ JSON */

/* utf8_len - length of the valid UTF-8 sequence at s (n bytes left), or
 * 0 when s does not start one (overlong forms, surrogates and code
 * points above U+10FFFF are not valid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* json_string - s as a JSON string ("" for NULL). */
static void json_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);

    fputc('"', out);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(p + i, n - i);

        if (len == 0) {
            fputs("\\ufffd", out);
            i++;
        } else if (len > 1) {
            /* U+2028 and U+2029 end lines in JavaScript: escaped too */
            if (len == 3 && p[i] == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
                fprintf(out, "\\u%04x", p[i + 2] == 0xa8 ? 0x2028 : 0x2029);
            else
                fwrite(p + i, 1, len, out);
            i += len;
        } else {
            unsigned char c = p[i++];

            switch (c) {
            case '"':  fputs("\\\"", out); break;
            case '\\': fputs("\\\\", out); break;
            case '\b': fputs("\\b", out); break;
            case '\f': fputs("\\f", out); break;
            case '\n': fputs("\\n", out); break;
            case '\r': fputs("\\r", out); break;
            case '\t': fputs("\\t", out); break;
            default:
                if (c < 0x20 || c == 0x7f)
                    fprintf(out, "\\u%04x", c);
                else
                    fputc(c, out);
            }
        }
    }
    fputc('"', out);
}

void queue_print_json_string(FILE *out, const char *s)
{
    json_string(out, s);
}

void queue_print_json(FILE *out, const QueueEntry *e, const char *node)
{
    fputs("{\"queue_name\": ", out);
    json_string(out, e->state);
    fputs(", \"queue_id\": ", out);
    json_string(out, e->queue_id);
    fprintf(out, ", \"arrival_time\": %llu, \"message_size\": %llu, \"sender\": ",
            (unsigned long long)(e->arrival / 1000000), (unsigned long long)e->size);
    json_string(out, e->sender);
    fputs(", \"recipients\": [", out);
    for (size_t i = 0; i < e->n_rcpt; i++) {
        const Recipient *r = e->rcpt[i];

        fputs(i ? ", {\"address\": " : "{\"address\": ", out);
        json_string(out, r->address);
        fprintf(out, ", \"state\": \"%s\", \"attempts\": %u, \"delay_reason\": ",
                rcpt_state(r->state), r->attempts);
        json_string(out, r->status_text);
        fputs("}", out);
    }
    fputs("], \"next_attempt\": ", out);
    if (e->next_attempt)
        fprintf(out, "%llu", (unsigned long long)(e->next_attempt / 1000000));
    else
        fputs("null", out);
    fputs(", \"reason\": ", out);
    json_string(out, e->reason);
    fputs(", \"node\": ", out);
    if (node)
        json_string(out, node);
    else
        fputs("null", out);
    fputs("}\n", out);
}

/* ------------------------------------------------------------ qshape */

typedef struct shape_count {
    char    *domain;         /* lower case */
    unsigned bucket;         /* index into the age columns */
} shape_count;

struct queue_shape {
    uint64_t     now_us;
    shape_count *count;      /* one per recipient; aggregated when printed */
    size_t       n, cap;
};

typedef struct shape_row {
    const char *domain;
    unsigned long long total, by_age[SHAPE_BUCKETS];
} shape_row;

queue_shape *queue_shape_new(uint64_t now_us)
{
    queue_shape *s = xcalloc(1, sizeof(*s));

    s->now_us = now_us;
    return s;
}

static unsigned shape_bucket(const queue_shape *s, uint64_t arrival_us)
{
    uint64_t minutes = arrival_us < s->now_us ? (s->now_us - arrival_us) / 60000000 : 0;
    unsigned b = 0;

    while (b < SHAPE_BUCKETS - 1 && minutes >= shape_minutes[b])
        b++;
    return b;
}

void queue_shape_add(queue_shape *s, const QueueEntry *e)
{
    unsigned bucket = shape_bucket(s, e->arrival);

    for (size_t i = 0; i < e->n_rcpt; i++) {
        const char *at;
        char *domain;

        if (rcpt_final(e->rcpt[i]->state))
            continue;
        at = strrchr(e->rcpt[i]->address, '@');
        domain = xstrdup(at && at[1] ? at + 1 : "(no domain)");
        for (char *p = domain; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 64;
            s->count = xrealloc(s->count, s->cap * sizeof(*s->count));
        }
        s->count[s->n].domain = domain;
        s->count[s->n++].bucket = bucket;
    }
}

static int count_by_domain(const void *a, const void *b)
{
    return strcmp(((const shape_count *)a)->domain, ((const shape_count *)b)->domain);
}

static int row_by_total(const void *a, const void *b)
{
    const shape_row *x = a, *y = b;

    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return strcmp(x->domain, y->domain);
}

static void shape_row_json(FILE *out, const shape_row *r)
{
    fputs("{\"domain\": ", out);
    json_string(out, r->domain);
    fprintf(out, ", \"total\": %llu, \"by_age\": [", r->total);
    for (unsigned b = 0; b < SHAPE_BUCKETS; b++)
        fprintf(out, "%s%llu", b ? ", " : "", r->by_age[b]);
    fputs("]}", out);
}

static void shape_print_json(FILE *out, const shape_row *total, const shape_row *rows, size_t n)
{
    fputs("{\"minutes\": [", out);
    for (unsigned b = 0; b < SHAPE_BUCKETS - 1; b++)
        fprintf(out, "%s%u", b ? ", " : "", shape_minutes[b]);
    fputs(", null], \"total\": ", out);
    shape_row_json(out, total);
    fputs(", \"domains\": [", out);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", out);
        shape_row_json(out, &rows[i]);
    }
    fputs("]}\n", out);
}

static void shape_print_text(FILE *out, const shape_row *total, const shape_row *rows, size_t n)
{
    char titles[SHAPE_BUCKETS + 1][16], num[32], shown[256];
    int width[SHAPE_BUCKETS + 1], dwidth = (int)strlen("TOTAL");

    /* column 0 is T (the total), then the ages */
    snprintf(titles[0], sizeof(titles[0]), "T");
    for (unsigned b = 0; b < SHAPE_BUCKETS - 1; b++)
        snprintf(titles[b + 1], sizeof(titles[b + 1]), "%u", shape_minutes[b]);
    snprintf(titles[SHAPE_BUCKETS], sizeof(titles[SHAPE_BUCKETS]), "%u+",
             shape_minutes[SHAPE_BUCKETS - 2]);
    for (unsigned c = 0; c <= SHAPE_BUCKETS; c++) {
        width[c] = (int)strlen(titles[c]);
        int w = snprintf(num, sizeof(num), "%llu", c ? total->by_age[c - 1] : total->total);
        if (w > width[c])
            width[c] = w;
    }
    for (size_t i = 0; i < n; i++) {
        int w = (int)strlen(clean(shown, sizeof(shown), rows[i].domain));
        if (w > dwidth)
            dwidth = w;
    }

    fprintf(out, "%*s", dwidth, "");
    for (unsigned c = 0; c <= SHAPE_BUCKETS; c++)
        fprintf(out, " %*s", width[c], titles[c]);
    fputc('\n', out);
    for (size_t i = 0; i <= n; i++) {
        const shape_row *r = i == 0 ? total : &rows[i - 1];

        fprintf(out, "%*s", dwidth, clean(shown, sizeof(shown), r->domain));
        for (unsigned c = 0; c <= SHAPE_BUCKETS; c++)
            fprintf(out, " %*llu", width[c], c ? r->by_age[c - 1] : r->total);
        fputc('\n', out);
    }
}

void queue_shape_print(FILE *out, queue_shape *s, bool json)
{
    shape_row total = {.domain = "TOTAL"};
    shape_row *rows = xcalloc(s->n + 1, sizeof(*rows));
    size_t n = 0;

    if (s->n > 1)
        qsort(s->count, s->n, sizeof(*s->count), count_by_domain);
    for (size_t i = 0; i < s->n; i++) {
        if (n == 0 || strcmp(rows[n - 1].domain, s->count[i].domain) != 0)
            rows[n++].domain = s->count[i].domain;
        rows[n - 1].total++;
        rows[n - 1].by_age[s->count[i].bucket]++;
        total.total++;
        total.by_age[s->count[i].bucket]++;
    }
    qsort(rows, n, sizeof(*rows), row_by_total);
    if (json)
        shape_print_json(out, &total, rows, n);
    else
        shape_print_text(out, &total, rows, n);
    free(rows);
}

void queue_shape_free(queue_shape **s)
{
    if (*s == NULL)
        return;
    for (size_t i = 0; i < (*s)->n; i++)
        free((*s)->count[i].domain);
    free((*s)->count);
    xfree(s);
}
