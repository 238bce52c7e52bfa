/* fetch_admin.c - the fetcher's admin commands (fetcher_admin_endpoint,
 * lib/admin.h), used by `correio fetch` (ctl/cmd_fetch.c):
 *
 *   fetch-list           text: one line "# accounts FILE: N[; error: ...]",
 *                        then one line per account, tab-separated:
 *                        name protocol server:port owner state runs
 *                        last_run last_success next_try taken_total
 *                        taken_last too_big failures keep last_error
 *                        (times in microseconds since the epoch, 0 never;
 *                        state idle|active|backoff|auth-failed|elsewhere)
 *   fetch-now ACCOUNT    run a session at once (after the running one)
 *   fetch-reset ACCOUNT  forget which messages were taken and the status
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "buf.h"
#include "fetch_run_int.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

/* list_line - one account's line. */
static void list_line(fetch_run_t *fr, const acct_slot *s, buf_t *out)
{
    const fetch_account *ac = s->ac;
    fetch_status st;
    const char *state;
    char err[FETCH_ERROR_MAX];

    fetch_state_status(fr->state, ac->name, &st);
    if (!s->owned)
        state = "elsewhere";
    else if (s->running)
        state = "active";
    else if (st.failures && st.auth_failed)
        state = "auth-failed";
    else if (st.failures)
        state = "backoff";
    else
        state = "idle";
    log_printable(err, sizeof(err), st.last_error, strlen(st.last_error));
    for (char *p = err; *p; p++)
        if (*p == '\t')
            *p = ' ';
    buf_printf(out, "%s\t%s\t%s:%u\t%s\t%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%u\t%s\t%s\n",
               ac->name, ac->srv.protocol == MAILBOX_IMAP ? "imap" : "pop3", ac->srv.host,
               ac->srv.port, fetch_run_owner(fr, ac->name), state,
               (unsigned long long)st.runs, (unsigned long long)st.last_run,
               (unsigned long long)st.last_success,
               (unsigned long long)(s->owned ? s->due_us : 0),
               (unsigned long long)st.taken_total, (unsigned long long)st.taken_last,
               (unsigned long long)st.too_big, st.failures, ac->keep ? "keep" : "delete", err);
}

void fetch_run_admin(void *arg, const AdminRequest *req, AdminReply *reply)
{
    fetch_run_t *fr = arg;
    const char *name = req->n_args >= 1 ? req->args[0] : NULL;
    acct_slot *slot = name ? fetch_run_slot(fr, name) : NULL;

    if (strcmp(req->command, "fetch-list") == 0) {
        buf_t out = BUF_INIT;
        size_t n = fr->accounts ? fr->accounts->n : 0;

        buf_printf(&out, "# accounts %s: %zu", fr->accounts ? fr->accounts->path : "-", n);
        if (fr->accounts_error)
            buf_printf(&out, "; error: %s", fr->accounts_error);
        buf_append_char(&out, '\n');
        for (size_t i = 0; i < n; i++)
            list_line(fr, &fr->slots[i], &out);
        admin_reply_text(reply, 0, "%s", out.data);
        buf_free(&out);
        return;
    }
    if (strcmp(req->command, "fetch-now") != 0 && strcmp(req->command, "fetch-reset") != 0) {
        admin_reply_text(reply, 2, "unknown command");
        return;
    }
    if (req->n_args != 1) {
        admin_reply_text(reply, 1, "%s needs one account name", req->command);
        return;
    }
    if (!slot) {
        char n[80];
        admin_reply_text(reply, 1, "no account %s in %s",
                         log_printable(n, sizeof(n), name, strlen(name)),
                         fr->accounts ? fr->accounts->path : "the accounts file");
        return;
    }
    if (!slot->owned) {
        admin_reply_text(reply, 1, "account %s is fetched by node %s, not %s", name,
                         fetch_run_owner(fr, name), fr->st->hostname);
        return;
    }
    if (strcmp(req->command, "fetch-now") == 0) {
        slot->now = true;
        log_info("%s: fetch now (admin)", name);
        admin_reply_text(reply, 0, slot->running
                                       ? "%s: a session is running; another follows it"
                                       : "%s: session started", name);
        return;
    }
    if (slot->running) {
        admin_reply_text(reply, 1, "%s: a session is running; reset it when it has ended", name);
        return;
    }
    long n = fetch_state_reset(fr->state, name);
    if (n < 0) {
        admin_reply_text(reply, 1, "%s: the state could not be written (see the log)", name);
        return;
    }
    log_info("%s: reset (admin): forgot %ld taken message%s", name, n, n == 1 ? "" : "s");
    admin_reply_text(reply, 0, "%s: forgot %ld taken message%s", name, n, n == 1 ? "" : "s");
}
