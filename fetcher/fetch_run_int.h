/* fetch_run_int.h - the scheduler's insides, shared by fetch_run.c and
 * fetch_admin.c only.  Everything here belongs to the main thread except
 * the job queues (under mu). */
#ifndef CORREIO_FETCHER_FETCH_RUN_INT_H
#define CORREIO_FETCHER_FETCH_RUN_INT_H

#include <pthread.h>
#include "accounts.h"
#include "fetch_run.h"
#include "fetch_session.h"

/* One account as the scheduler sees it. */
typedef struct acct_slot {
    const fetch_account *ac;        /* in fr->accounts */
    bool     owned;                 /* this node fetches it */
    bool     running;               /* handed to a worker, not reaped yet */
    bool     now;                   /* fetch-now: run at once, backoff or not */
    uint64_t due_us;                /* wall clock */
} acct_slot;

/* A session handed to a worker: a private copy of the account. */
typedef struct fetch_job {
    struct fetch_job *next;
    fetch_account     ac;
    fetch_outcome     out;
} fetch_job;

struct fetch_run {
    stage_t          *st;
    fetch_env         env;
    fetch_state_t    *state;
    fetch_accounts_t *accounts;
    char             *accounts_error;   /* the last load's error, NULL when fine */
    acct_slot        *slots;            /* one per account, same order */
    char            **nodes;            /* fetcher_nodes (copies) */
    size_t            nnodes;
    bool              in_nodes;         /* myhostname is one of them */
    users_t          *users;
    pthread_mutex_t   users_mu;
    char             *submit_endpoint;

    pthread_t        *threads;
    size_t            nthreads;
    pthread_mutex_t   mu;
    pthread_cond_t    cond;
    fetch_job        *q_head, *q_tail;  /* waiting for a worker */
    fetch_job        *d_head;           /* finished */
    bool              stop;
    int               efd;
};

/* fetch_run_slot - the slot of account name, or NULL. */
acct_slot *fetch_run_slot(fetch_run_t *fr, const char *name);
/* fetch_run_owner - the node that fetches name ("" when none does). */
const char *fetch_run_owner(const fetch_run_t *fr, const char *name);

#endif
