/* qid.c - queue ids: time, node and counter in Crockford base32.
 *
 * The alphabet is in ASCII order, so ids of one process compare as
 * strings in the order they were made.  Ids made within one microsecond
 * (or after the clock stepped back) reuse the last time and count up; when
 * the counter is full the time is bumped by one microsecond, so ids stay
 * strictly increasing within a process.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "qid.h"
#include "timeutil.h"

#define QID_TIME_CHARS  11
#define QID_NODE_CHARS  4
#define QID_COUNT_CHARS 2
#define QID_COUNT_MAX   (1u << (5 * QID_COUNT_CHARS))

static const char qid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t qid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t qid_node;
static bool     qid_seeded;
static uint64_t qid_last_us;
static uint32_t qid_count;

/* fnv1a - the node hash; good enough to spread host+pid over 20 bits. */
static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    while (n--) {
        h ^= *s++;
        h *= 16777619u;
    }
    return h;
}

void qid_init(const char *hostname)
{
    uint32_t h = 2166136261u;
    pid_t pid = getpid();

    if (hostname)
        h = fnv1a(h, hostname, strlen(hostname));
    h = fnv1a(h, &pid, sizeof(pid));
    pthread_mutex_lock(&qid_lock);
    qid_node = (h ^ (h >> 20)) & 0xFFFFF;
    qid_seeded = true;
    pthread_mutex_unlock(&qid_lock);
}

/* encode - value as exactly n base32 digits, most significant first. */
static void encode(char *out, uint64_t value, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = qid_alphabet[value & 31];
        value >>= 5;
    }
}

void qid_next(char out[QID_LEN + 1])
{
    uint64_t now = time_now_us();
    uint64_t t;
    uint32_t c, node;

    if (!qid_seeded) {
        char host[256] = "";
        gethostname(host, sizeof(host) - 1);
        qid_init(host);
    }
    pthread_mutex_lock(&qid_lock);
    if (now > qid_last_us) {
        qid_last_us = now;
        qid_count = 0;
    } else if (++qid_count >= QID_COUNT_MAX) {
        qid_last_us++;
        qid_count = 0;
    }
    t = qid_last_us;
    c = qid_count;
    node = qid_node;
    pthread_mutex_unlock(&qid_lock);

    encode(out, t, QID_TIME_CHARS);
    encode(out + QID_TIME_CHARS, node, QID_NODE_CHARS);
    encode(out + QID_TIME_CHARS + QID_NODE_CHARS, c, QID_COUNT_CHARS);
    out[QID_LEN] = 0;
}

bool qid_valid(const char *s, size_t len)
{
    if (s == NULL || len != QID_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 0 || strchr(qid_alphabet, s[i]) == NULL)
            return false;
    return true;
}
