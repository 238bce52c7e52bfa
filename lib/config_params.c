/* config_params.c - every correio.conf parameter, declared once.
 *
 * Name, type, default (in the file's own syntax, $name expands), bounds
 * and a one-line doc that `correio config -d` prints.  Where Postfix has a
 * parameter with the same meaning, it has the same name and default.
 * Bounds: INT as is, SIZE in bytes, TIME in milliseconds, NUMBER as is.
 * Parameters with an empty default whose value is computed at load time
 * (myhostname, mydomain) say so in their doc line.
 */
#include <limits.h>
#include "config.h"

#define KB 1024LL
#define MB (1024LL * KB)
#define GB (1024LL * MB)
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define NOLIMIT LLONG_MAX

const param_def config_params[] = {
    /* --- identity and domains */
    {"myhostname", PARAM_STR, "", 0, 0,
     "this host's fully qualified name (empty: the system host name)"},
    {"mydomain", PARAM_STR, "", 0, 0,
     "this host's domain (empty: myhostname without its first label)"},
    {"mydestination", PARAM_LIST, "$myhostname, localhost.$mydomain, localhost", 0, 0,
     "domains delivered to local Maildirs; their recipients must exist in users_file"},
    {"mynetworks", PARAM_NETWORKS, "127.0.0.0/8, [::1]/128", 0, 0,
     "clients in these networks may relay to any domain"},
    {"users_file", PARAM_STR, "users", 0, 0,
     "local accounts, Dovecot passwd-file format; relative to the config directory"},

    /* --- files and ownership */
    {"mail_owner", PARAM_STR, "correio", 0, 0,
     "user the stages run as when started by root (after binding their listeners)"},
    {"mail_root", PARAM_STR, "/var/lib/correio/mail", 0, 0,
     "a local recipient's Maildir is mail_root/DOMAIN/LOCALPART/"},
    {"data_directory", PARAM_STR, "/var/lib/correio", 0, 0,
     "LMDB state: ingress spool, delivery queue, router state"},
    {"run_directory", PARAM_STR, "/run/correio", 0, 0,
     "ipc:// sockets between stages on one host"},

    /* --- SMTP server (ingress) */
    {"smtpd_listen", PARAM_LIST, "0.0.0.0:25", 0, 0,
     "SMTP listeners, host:port each ([v6addr]:port for IPv6)"},
    {"smtpd_banner", PARAM_STR, "$myhostname ESMTP correio", 0, 0,
     "text after 220 in the greeting"},
    {"message_size_limit", PARAM_SIZE, "10240000", 1 * KB, 4 * GB,
     "largest message accepted, in bytes (552 5.3.4 above it)"},
    {"smtpd_recipient_limit", PARAM_INT, "1000", 1, 1000000,
     "recipients per message (452 4.5.3 after that)"},
    {"smtpd_timeout", PARAM_TIME, "300s", 1 * SEC, 1 * HOUR,
     "idle time allowed while waiting for a client's command or data"},
    {"smtpd_session_limit", PARAM_INT, "2000", 1, 1000000,
     "concurrent SMTP sessions per ingress (421 4.7.0 beyond)"},
    {"smtpd_hard_error_limit", PARAM_INT, "20", 1, 1000,
     "errors in one session before the ingress says 421 and hangs up"},

    /* --- spool and pipeline (ingress) */
    {"spool_map_size", PARAM_SIZE, "4g", 16 * MB, 1024 * GB,
     "largest size of the ingress spool LMDB (a sparse file)"},
    {"spool_message_limit", PARAM_INT, "100000", 1, 100000000,
     "messages in the spool not yet owned by delivery before MAIL gets 451 4.3.1"},
    {"pipeline_ack_timeout", PARAM_TIME, "30s", 100, 1 * DAY,
     "wait this long for delivery to own a message before sending it again"},
    {"pipeline_ack_timeout_max", PARAM_TIME, "10m", 100, 1 * DAY,
     "the resend wait doubles up to this"},
    {"pipeline_hwm", PARAM_INT, "1000", 1, 1000000,
     "ZeroMQ high-water mark of the pipeline sockets, in messages"},

    /* --- classifier */
    {"spam_required_score", PARAM_NUMBER, "5", -1000, 1000,
     "score at or above which a message is spam (X-Spam-Status: Yes)"},

    /* --- delivery */
    {"queue_map_size", PARAM_SIZE, "4g", 16 * MB, 1024 * GB,
     "largest size of the delivery queue LMDB (a sparse file)"},
    {"delivery_workers", PARAM_INT, "4", 1, 256,
     "threads that write Maildir files in parallel"},
    {"minimal_backoff_time", PARAM_TIME, "300s", 100, 1 * DAY,
     "first retry delay of a deferred recipient"},
    {"maximal_backoff_time", PARAM_TIME, "4000s", 100, 30 * DAY,
     "retry delay doubles up to this"},
    {"duplicate_retention_time", PARAM_TIME, "10d", 1 * MIN, 365 * DAY,
     "how long delivery remembers a delivered queue id to drop re-sent copies"},

    /* --- stage endpoints (consumer binds, producers connect) */
    {"ingress_events_endpoint", PARAM_STR, "ipc://$run_directory/ingress-events", 0, 0,
     "where this ingress receives events (delivery acks); goes into each envelope"},
    {"classifier_endpoint", PARAM_STR, "ipc://$run_directory/classifier", 0, 0,
     "ingress -> classifier (PUSH -> PULL)"},
    {"router_endpoint", PARAM_STR, "ipc://$run_directory/router", 0, 0,
     "classifier -> router (PUSH -> PULL)"},
    {"delivery_endpoint", PARAM_STR, "ipc://$run_directory/delivery", 0, 0,
     "router -> delivery (PUSH -> PULL)"},
    {"ingress_admin_endpoint", PARAM_STR, "ipc://$run_directory/ingress-admin", 0, 0,
     "correio -> ingress admin (REQ -> REP)"},
    {"classifier_admin_endpoint", PARAM_STR, "ipc://$run_directory/classifier-admin", 0, 0,
     "correio -> classifier admin (REQ -> REP)"},
    {"router_admin_endpoint", PARAM_STR, "ipc://$run_directory/router-admin", 0, 0,
     "correio -> router admin (REQ -> REP)"},
    {"delivery_admin_endpoint", PARAM_STR, "ipc://$run_directory/delivery-admin", 0, 0,
     "correio -> delivery admin (REQ -> REP)"},

    {0, 0, 0, 0, 0, 0},
};
