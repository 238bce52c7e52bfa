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
     "smtp listeners (mail between servers), host:port each ([v6addr]:port for IPv6)"},
    {"submission_listen", PARAM_LIST, "", 0, 0,
     "submission listeners (587): every transaction must be authenticated"},
    {"submissions_listen", PARAM_LIST, "", 0, 0,
     "submissions listeners (465): implicit TLS, then as submission"},
    {"submission_bypass_file", PARAM_STR, "", 0, 0,
     "who may send on submission without AUTH: i:CIDR, s:sender@domain, s:@domain, l: (local senders)"},
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

    /* --- TLS and AUTH (ingress) */
    {"smtpd_tls_cert_file", PARAM_STR, "", 0, 0,
     "PEM certificate chain (leaf first) of the SMTP server; empty: no TLS"},
    {"smtpd_tls_key_file", PARAM_STR, "$smtpd_tls_cert_file", 0, 0,
     "PEM private key of smtpd_tls_cert_file"},
    {"smtpd_tls_security_level", PARAM_CHOICE, "may", 0, 0,
     "STARTTLS on smtp/submission: none, may (offered), encrypt (required before MAIL)"},
    {"smtpd_sasl_auth_enable", PARAM_BOOL, "yes", 0, 0,
     "offer AUTH PLAIN and LOGIN against users_file"},
    {"smtpd_tls_auth_only", PARAM_BOOL, "yes", 0, 0,
     "offer AUTH only inside TLS"},
    {"smtpd_auth_failure_delay", PARAM_TIME, "1s", 0, 1 * MIN,
     "delay before answering a failed AUTH; doubles with each failure of the session"},

    /* --- restrictions (ingress), Postfix names and first-match semantics */
    {"smtpd_client_restrictions", PARAM_RESTRICTIONS, "", 0, 0,
     "restrictions on the client's address and name"},
    {"smtpd_helo_restrictions", PARAM_RESTRICTIONS, "", 0, 0,
     "restrictions on the HELO/EHLO name"},
    {"smtpd_sender_restrictions", PARAM_RESTRICTIONS, "", 0, 0,
     "restrictions on MAIL FROM"},
    {"smtpd_relay_restrictions", PARAM_RESTRICTIONS,
     "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination", 0, 0,
     "relay control at RCPT TO, before smtpd_recipient_restrictions"},
    {"smtpd_recipient_restrictions", PARAM_RESTRICTIONS, "", 0, 0,
     "restrictions at RCPT TO (spam blocking), after smtpd_relay_restrictions"},
    {"smtpd_data_restrictions", PARAM_RESTRICTIONS, "", 0, 0,
     "restrictions at DATA (e.g. reject_unauth_pipelining)"},
    {"smtpd_delay_reject", PARAM_BOOL, "yes", 0, 0,
     "apply client, helo and sender restrictions at RCPT TO, as Postfix"},
    {"smtpd_helo_required", PARAM_BOOL, "no", 0, 0,
     "MAIL needs HELO/EHLO first"},
    {"smtpd_reject_unlisted_recipient", PARAM_BOOL, "yes", 0, 0,
     "unknown local recipients get 550 5.1.1 even with no reject_unlisted_recipient"},
    {"smtpd_reject_unlisted_sender", PARAM_BOOL, "no", 0, 0,
     "unknown senders in local domains get 553 5.1.0 even with no reject_unlisted_sender"},
    {"relay_domains", PARAM_LIST, "", 0, 0,
     "domains this host relays to from anywhere (permit_auth_destination)"},
    {"allow_untrusted_routing", PARAM_BOOL, "no", 0, 0,
     "let untrusted clients relay via user%host@domain or user!host@domain"},
    {"smtpd_sender_login_maps", PARAM_MAPS, "", 0, 0,
     "sender address/domain -> login(s) that own it (reject_sender_login_mismatch)"},
    {"smtpd_sender_size_limit_maps", PARAM_MAPS, "", 0, 0,
     "user@domain or domain -> largest message it may send (e.g. 5m)"},
    {"unknown_address_reject_code", PARAM_INT, "450", 400, 599,
     "reply for reject_unknown_sender/recipient_domain when the domain does not exist"},
    {"unknown_hostname_reject_code", PARAM_INT, "450", 400, 599,
     "reply for reject_unknown_helo_hostname"},
    {"unknown_client_reject_code", PARAM_INT, "450", 400, 599,
     "reply for reject_unknown_client_hostname and reject_unknown_reverse_client_hostname"},
    {"smtpd_peername_lookup", PARAM_BOOL, "yes", 0, 0,
     "look up the client's name (PTR, confirmed by A/AAAA) before the greeting"},

    /* --- content checks while receiving (ingress) */
    {"header_checks", PARAM_MAPS, "", 0, 0,
     "pcre: tables applied to each header line: REJECT, WARN, IGNORE, DISCARD, HOLD"},
    {"body_checks", PARAM_MAPS, "", 0, 0,
     "pcre: tables applied to each body line, as header_checks"},
    {"body_checks_size_limit", PARAM_SIZE, "51200", 0, 4 * GB,
     "body bytes of a message that body_checks look at"},

    /* --- DNS (every stage that resolves) */
    {"dns_servers", PARAM_LIST, "", 0, 0,
     "DNS servers IP or IP:port, tried in turn; empty: /etc/resolv.conf"},
    {"dns_timeout", PARAM_TIME, "5s", 100, 1 * MIN,
     "wait for one DNS server's answer this long"},
    {"dns_tries", PARAM_INT, "2", 1, 10,
     "rounds over the DNS servers before a lookup fails temporarily"},

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

const param_choice config_param_choices[] = {
    {"smtpd_tls_security_level", "none may encrypt"},
    {0, 0},
};
