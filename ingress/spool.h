/* spool.h - the ingress spool: an LMDB environment (data_directory/spool),
 * database "messages", key = queue id, value = the packed Envelope; and
 * database "refs", key = a submitter's ref (its idempotency key, see
 * submit_server.h), value = when it was taken (8 bytes, microseconds
 * since the epoch, host order) and the queue id it got (QID_LEN bytes).
 * A ref is written in the same commit as its message and forgotten
 * after SPOOL_REF_LIFETIME_S.
 *
 * Writes go through one writer thread that does group commit: it takes
 * every operation queued since its last commit, applies them in one write
 * transaction and commits (fsync) once.  Then it hands the finished puts
 * back to the event loop (spool_take_done) and makes spool_fd() readable.
 * Reads (resend, queue-list) are read transactions in the caller's thread.
 */
#ifndef CORREIO_SPOOL_H
#define CORREIO_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "qid.h"

typedef struct spool spool_t;

/* A finished put, returned by spool_take_done (a linked list). */
typedef struct spool_done {
    struct spool_done *next;
    char     qid[QID_LEN + 1];
    uint8_t *data;      /* the packed envelope; the receiver owns it now */
    size_t   len;
    void    *cookie;    /* what spool_put was given */
    int      rc;        /* 0: durable; else an LMDB error code */
    char     orig_qid[QID_LEN + 1]; /* spool_put_ref: "" normally; else the ref
                                     * was taken before as this queue id and
                                     * nothing was written (rc 0) */
} spool_done;

#define SPOOL_REF_MAX        400                   /* longest ref remembered (bytes) */
#define SPOOL_REF_LIFETIME_S (7 * 24 * 3600)       /* refs are forgotten after this */

/* spool_open - open (creating) dir with map_size; starts the writer
 * thread.  Fatal when the environment cannot be opened. */
spool_t *spool_open(const char *dir, size_t map_size);
/* spool_close - let the writer finish what is queued (its current commit
 * included), stop it, close the environment. */
void spool_close(spool_t **sp);
/* spool_fd - an eventfd, readable when spool_take_done has something. */
int spool_fd(spool_t *sp);

/* spool_put - queue a write of data (len bytes, packed envelope) under
 * qid; the spool owns data until it comes back through spool_take_done
 * with cookie. */
void spool_put(spool_t *sp, const char *qid, uint8_t *data, size_t len, void *cookie);
/* spool_put_ref - spool_put that also records ref (1..SPOOL_REF_MAX
 * bytes) -> qid in the same commit; when ref is already recorded (an
 * earlier or a concurrent put), nothing is written and the completion
 * carries the first queue id in orig_qid. */
void spool_put_ref(spool_t *sp, const char *qid, uint8_t *data, size_t len, const char *ref,
                   void *cookie);
/* spool_ref_lookup - is ref recorded (committed)?  0 with its queue id in
 * qid, or -1. */
int spool_ref_lookup(spool_t *sp, const char *ref, char qid[QID_LEN + 1]);
/* spool_delete - queue the removal of qid (nothing comes back). */
void spool_delete(spool_t *sp, const char *qid);
/* spool_take_done - clear the eventfd and take the finished puts, in the
 * order they were queued; NULL when there are none.  Free each node with
 * spool_done_free (which frees data unless the caller took it, setting
 * data to NULL). */
spool_done *spool_take_done(spool_t *sp);
void spool_done_free(spool_done **d);

/* spool_get - copy the value of qid into out (reset first); 0, or -1 when
 * it is not there. */
int spool_get(spool_t *sp, const char *qid, buf_t *out);
/* spool_foreach - call fn for every entry in key order inside one read
 * transaction (data is only valid during the call); returns the count. */
typedef void (*spool_visit)(void *ctx, const char *qid, const void *data, size_t len);
size_t spool_foreach(spool_t *sp, spool_visit fn, void *ctx);

#endif
