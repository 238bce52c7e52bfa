/* log.c - Postfix-style log lines on stderr, one write(2) per line.
 *
 * The line is built in a buffer on the stack (long messages are cut, never
 * split) so that processes sharing the supervisor's stream never
 * interleave within a line.  Modelled on Postfix's msg(3).
 *
 * Two shapes (log.h shows them): under systemd, when stderr is the
 * journal stream named by $JOURNAL_STREAM, a line starts with the
 * sd-daemon(3) priority "<N>" and has no time or host (journald records
 * both); anywhere else (a terminal, `correio run`, a container's log)
 * it starts with an ISO 8601 time in UTC with milliseconds and the host.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096

static char log_program[64] = "correio";
static char log_host[256];
static bool log_is_verbose;
static int log_journal = -1;    /* stderr is journald's stream: 1; -1 not known yet */

/* sd-daemon(3) priorities */
#define LOG_PRI_CRIT    2
#define LOG_PRI_ERR     3
#define LOG_PRI_WARNING 4
#define LOG_PRI_INFO    6
#define LOG_PRI_DEBUG   7

/* log_to_journal - is stderr the stream systemd gave us ($JOURNAL_STREAM
 * is "DEVICE:INODE" of it; a child whose stderr was redirected keeps the
 * variable but not the stream)? */
static bool log_to_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat sb;

    return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &sb) == 0
           && (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

void log_init(const char *program)
{
    char *dot;

    snprintf(log_program, sizeof(log_program), "correio/%s", program);
    if (gethostname(log_host, sizeof(log_host) - 1) != 0)
        snprintf(log_host, sizeof(log_host), "localhost");
    log_host[sizeof(log_host) - 1] = 0;
    /* syslog shows the short name */
    if ((dot = strchr(log_host, '.')) != NULL)
        *dot = 0;
    log_journal = log_to_journal();
}

void log_set_verbose(bool on)
{
    log_is_verbose = on;
}

bool log_verbose(void)
{
    return log_is_verbose;
}

/* log_vline - format one complete line and write it in one go. */
static void log_vline(int pri, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_vline(int pri, const char *prefix, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n;
    int saved_errno = errno;
    struct tm tm;
    struct timeval now;
    int r;

    if (log_host[0] == 0) {
        if (gethostname(log_host, sizeof(log_host) - 1) != 0)
            snprintf(log_host, sizeof(log_host), "localhost");
        log_host[strcspn(log_host, ".")] = 0;
    }
    if (log_journal < 0)
        log_journal = log_to_journal();
    if (log_journal) {
        n = 0;
        r = snprintf(line, sizeof(line), "<%d>%s[%ld]: %s", pri, log_program, (long)getpid(),
                     prefix);
    } else {
        gettimeofday(&now, NULL);
        gmtime_r(&now.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s[%ld]: %s",
                     (long)now.tv_usec / 1000, log_host, log_program, (long)getpid(), prefix);
    }
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    errno = saved_errno;  /* so %m works */
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write; a short write to a pipe of < PIPE_BUF cannot happen. */
    while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
        ;
    errno = saved_errno;
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (!log_is_verbose)
        return;
    va_start(ap, fmt);
    log_vline(LOG_PRI_DEBUG, "", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_PRI_INFO, "", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_PRI_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_PRI_ERR, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void log_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vline(LOG_PRI_CRIT, "panic: ", fmt, ap);
    va_end(ap);
    abort();
}

char *log_printable(char *dst, size_t dstsize, const char *src, size_t len)
{
    size_t i, n, room;
    bool cut;

    if (dstsize == 0)
        return dst;
    room = dstsize - 1;
    cut = len > room;
    if (cut)
        room = room > 3 ? room - 3 : 0;
    n = len < room ? len : room;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (cut) {
        for (; i < dstsize - 1; i++)
            dst[i] = '.';
    }
    dst[i] = 0;
    return dst;
}
