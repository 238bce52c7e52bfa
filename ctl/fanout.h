/* fanout.h - one request sent to many stage processes at once, and the
 * wait for their answers: what `correio queue` (admin_nodes.c) and
 * `correio greylist|intrusion|limits` (cmd_policy.c) share.  The caller
 * makes the REQ sockets and sends; fanout_wait collects one answer from
 * each until a deadline.
 */
#ifndef CORREIO_CTL_FANOUT_H
#define CORREIO_CTL_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* fanout_socket - a REQ socket connected to endpoint (IPv6 allowed),
 * with send and receive timeouts of timeout_ms; NULL and *err (malloc'd,
 * "cannot connect: ...") on failure.  The CurveZMQ client settings are
 * applied (lib/curve.h; the stage is told by the endpoint's port). */
void *fanout_socket(void *zctx, const char *endpoint, int timeout_ms, char **err);

/* What one socket answered: data/len is the message (valid during the
 * call), or data is NULL and error says why the receive failed. */
typedef void (*fanout_answer)(void *arg, size_t i, const void *data, size_t len,
                              const char *error);

/* fanout_wait - wait until deadline_ms (time_mono_ms) for one message on
 * each of socks[0..n); answer(arg, i, ...) runs for each socket that
 * answers, as the answers come.  Returns a malloc'd array of n flags (the
 * caller frees it): true for each socket that never answered (a REQ
 * socket in that state is stuck: close it). */
bool *fanout_wait(void *const *socks, size_t n, int64_t deadline_ms, fanout_answer answer,
                  void *arg);

#endif
