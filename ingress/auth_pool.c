/* auth_pool.c - worker threads for password checks (see auth_pool.h).
 * One mutex guards the two queues; jobs are handed over whole, so a
 * worker never touches a job the loop is looking at. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth_pool.h"
#include "log.h"
#include "users.h"
#include "xalloc.h"

struct auth_job {
    char       *stored;             /* NULL: unknown user */
    char       *password;
    void       *cookie;
    bool        ok;
    bool        abandoned;          /* only the loop's thread reads or writes it */
    auth_job_t *next;
};

struct auth_pool {
    pthread_mutex_t lock;
    pthread_cond_t  wake;
    auth_job_t     *todo, *todo_tail;
    auth_job_t     *done, *done_tail;
    pthread_t      *threads;
    unsigned        n_threads;
    bool            stopping;
    int             efd;
    char           *dummy;          /* a hash to check unknown users against */
};

static void push(auth_job_t **head, auth_job_t **tail, auth_job_t *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *worker(void *arg)
{
    auth_pool_t *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        auth_job_t *j;
        user_entry e = {.address = "", .home = "", .extra = ""};
        uint64_t one = 1;

        while (!p->todo && !p->stopping)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stopping)
            break;
        j = p->todo;
        p->todo = j->next;
        if (!p->todo)
            p->todo_tail = NULL;
        pthread_mutex_unlock(&p->lock);

        e.password = j->stored ? j->stored : p->dummy;
        j->ok = users_verify_password(&e, j->password) && j->stored != NULL;
        memset(j->password, 0, strlen(j->password));

        pthread_mutex_lock(&p->lock);
        push(&p->done, &p->done_tail, j);
        if (write(p->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("auth pool: eventfd write: %s", strerror(errno));
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

auth_pool_t *auth_pool_new(unsigned threads)
{
    auth_pool_t *p = xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0)
        log_fatal("auth pool: eventfd: %s", strerror(errno));
    p->dummy = users_hash_password("correio dummy password");
    p->threads = xcalloc(threads, sizeof(*p->threads));
    for (unsigned i = 0; i < threads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker, p);
        if (rc != 0)
            log_fatal("auth pool: pthread_create: %s", strerror(rc));
    }
    p->n_threads = threads;
    return p;
}

static void job_free(auth_job_t **j)
{
    if (!*j)
        return;
    if ((*j)->password) {
        memset((*j)->password, 0, strlen((*j)->password));
        xfree(&(*j)->password);
    }
    xfree(&(*j)->stored);
    xfree(j);
}

static void free_jobs(auth_job_t *list)
{
    while (list) {
        auth_job_t *j = list;
        list = j->next;
        job_free(&j);
    }
}

void auth_pool_free(auth_pool_t **pp)
{
    auth_pool_t *p = *pp;

    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free_jobs(p->todo);
    free_jobs(p->done);
    close(p->efd);
    xfree(&p->dummy);
    xfree(&p->threads);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    xfree(pp);
}

int auth_pool_fd(const auth_pool_t *p)
{
    return p->efd;
}

auth_job_t *auth_pool_check(auth_pool_t *p, const char *stored, const char *password,
                            void *cookie)
{
    auth_job_t *j = xcalloc(1, sizeof(*j));

    j->stored = stored ? xstrdup(stored) : NULL;
    j->password = xstrdup(password);
    j->cookie = cookie;
    pthread_mutex_lock(&p->lock);
    push(&p->todo, &p->todo_tail, j);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return j;
}

void auth_job_abandon(auth_job_t **j)
{
    if (*j)
        (*j)->abandoned = true;
    *j = NULL;
}

void auth_pool_run(auth_pool_t *p, void (*done)(void *cookie, bool ok))
{
    uint64_t n;
    auth_job_t *list;

    if (read(p->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("auth pool: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&p->lock);
    list = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (list) {
        auth_job_t *j = list;
        list = j->next;
        if (!j->abandoned)
            done(j->cookie, j->ok);
        job_free(&j);
    }
}
