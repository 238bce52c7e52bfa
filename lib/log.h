/* log.h - Postfix-style logging, one line per event.
 *
 * Lines go to stderr (the supervisor gives all stages one stream) as
 *   2026-11-23T08:11:00.042Z HOST correio/ingress[123]: 4F2A1B...: client=... text
 * (time in UTC, ISO 8601, for container logs and `correio run`), or,
 * when stderr is systemd's journal stream ($JOURNAL_STREAM), as
 *   <6>correio/ingress[123]: 4F2A1B...: client=... text
 * with the sd-daemon(3) priority (7 debug, 6 info, 4 warning, 3 fatal,
 * 2 panic) and no time or host, which journald adds itself.  Lines of
 * trouble say so after the pid: "warning: ", "fatal: ", "panic: ".
 * Callers put the queue id first when there is one, then key=value pairs.
 * Each line is written with a single write(2), so stages that share the
 * stream never interleave within a line.
 *
 * Three levels of trouble, as in Postfix's msg(3):
 *   log_warn   bad input from outside: log, answer it properly, go on.
 *   log_fatal  a broken environment (cannot bind, cannot open LMDB):
 *              log and exit(1) with a message that says what to fix.
 *   log_panic  an internal bug, an impossible state: log and abort().
 */
#ifndef CORREIO_LOG_H
#define CORREIO_LOG_H

#include <stddef.h>
#include <stdbool.h>

/* log_init - name the program ("ingress" logs as correio/ingress). */
void log_init(const char *program);
void log_set_verbose(bool on);
bool log_verbose(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* log_printable - copy at most max bytes of text from outside into dst
 * (size dstsize) with every byte that is not printable ASCII replaced by
 * '?', and "..." appended when it was cut.  Returns dst.  Use it for every
 * piece of client or peer text that goes into a log line. */
char *log_printable(char *dst, size_t dstsize, const char *src, size_t len);

#endif
