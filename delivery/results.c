/* results.c - shared envelopes and the result box (see results.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "log.h"
#include "results.h"
#include "xalloc.h"

struct work_msg {
    Envelope *env;
    int       refs;
};

work_msg *work_msg_new(Envelope *env)
{
    work_msg *m = xcalloc(1, sizeof *m);
    m->env = env;
    m->refs = 1;
    return m;
}

const Envelope *work_msg_envelope(const work_msg *m)
{
    return m->env;
}

work_msg *work_msg_ref(work_msg *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void work_msg_unref(work_msg **mp)
{
    work_msg *m = *mp;
    if (!m)
        return;
    *mp = NULL;
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        wire_free_envelope(&m->env);
        xfree(&m);
    }
}

void work_result_clear(work_result *r)
{
    xfree(&r->relay);
    xfree(&r->text);
    xfree(&r->remote_mta);
    xfree(&r->diagnostic);
}

struct results {
    pthread_mutex_t lock;
    int             efd;
    work_result    *list;
    size_t          n, cap;
};

results_t *results_new(void)
{
    results_t *b = xcalloc(1, sizeof *b);
    if (pthread_mutex_init(&b->lock, NULL) != 0)
        log_fatal("cannot create the result lock");
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0)
        log_fatal("cannot create an eventfd: %s", strerror(errno));
    return b;
}

static void results_lock(results_t *b)
{
    int rc = pthread_mutex_lock(&b->lock);
    if (rc != 0)
        log_panic("results_lock: %s", strerror(rc));
}

static void results_unlock(results_t *b)
{
    int rc = pthread_mutex_unlock(&b->lock);
    if (rc != 0)
        log_panic("results_unlock: %s", strerror(rc));
}

void results_post(results_t *b, const work_result *r)
{
    results_lock(b);
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->list = xrealloc(b->list, b->cap * sizeof *b->list);
    }
    b->list[b->n++] = *r;
    results_unlock(b);
    uint64_t one = 1;
    while (write(b->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

int results_fd(const results_t *b)
{
    return b->efd;
}

size_t results_collect(results_t *b, work_result **out)
{
    uint64_t count;
    while (read(b->efd, &count, sizeof count) < 0 && errno == EINTR)
        ;                                  /* EAGAIN: nothing was signalled */
    results_lock(b);
    size_t n = b->n;
    *out = b->list;
    b->list = NULL;
    b->n = b->cap = 0;
    results_unlock(b);
    return n;
}

void results_free(results_t **bp)
{
    results_t *b = *bp;
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        work_result_clear(&b->list[i]);
    xfree(&b->list);
    if (close(b->efd) != 0)
        log_warn("close eventfd: %s", strerror(errno));
    pthread_mutex_destroy(&b->lock);
    xfree(bp);
}
