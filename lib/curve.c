/* curve.c - CurveZMQ on the TCP hops (see curve.h).
 *
 * The process-wide state (curve_init) is written once before any socket
 * exists and only read afterwards; the authorised list and the set of
 * keys already reported as rejected belong to the ZAP thread alone.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "fsutil.h"
#include "log.h"
#include "xalloc.h"

#define CURVE_KEY_FILE_MAX   4096          /* a key file is two short lines */
#define CURVE_AUTH_FILE_MAX  (1024 * 1024) /* an authorised-keys file */
#define CURVE_AUTH_MAX       100000        /* keys in the authorised list */
#define CURVE_REJECTED_MAX   256           /* rejected keys remembered (log once) */
#define CURVE_ZAP_ENDPOINT   "inproc://zeromq.zap.01"
#define CURVE_ZAP_FRAMES     8             /* a CURVE request has 7 */

const char *const curve_key_names[] = {
    "ingress", "classifier", "router", "delivery", "fetcher", "ctl", NULL,
};

/* One configured endpoint: which parameter, and which stage listens. */
typedef struct curve_ep {
    char       *param;
    char       *value;
    const char *peer;      /* a curve_key_names string */
} curve_ep;

typedef char curve_key_text[CURVE_KEY_Z85_LEN + 1];

static struct {
    curve_mode     mode;
    bool           allow_plaintext;
    char          *self;
    char          *keys_dir;
    char          *auth_path;       /* directory of *.pub, or a file */
    bool           have_keys;
    curve_keypair  kp;
    char          *key_err;         /* why have_keys is false */
    curve_ep      *eps;
    size_t         n_eps;
    /* the ZAP handler */
    bool           zap_running;
    pthread_t      zap_thread;
    /* ZAP thread only, after it started */
    curve_key_text *auth;
    size_t         n_auth;
    struct stat    auth_st;
    bool           auth_loaded;
    bool           auth_stat_failed;
    curve_key_text *rejected;
    size_t         n_rejected;
} cs;

/* ------------------------------------------------------------ decisions */

/* tcp_host - the host part of a tcp:// endpoint (after a "source;"
 * part) into host; false when there is none. */
static bool tcp_host(const char *endpoint, char *host, size_t size)
{
    const char *h = endpoint + strlen("tcp://"), *semi = strchr(h, ';'), *end;

    if (semi)
        h = semi + 1;
    if (*h == '[') {
        h++;
        end = strchr(h, ']');
    } else {
        end = strrchr(h, ':');
    }
    if (end == NULL || end == h || (size_t)(end - h) >= size)
        return false;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = 0;
    return true;
}

curve_ep_class curve_endpoint_class(const char *endpoint)
{
    char host[256];
    struct in_addr a4;
    struct in6_addr a6;

    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return CURVE_EP_LOCAL;
    if (strncmp(endpoint, "tcp://", 6) != 0 || !tcp_host(endpoint, host, sizeof(host)))
        return CURVE_EP_REMOTE;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "lo") == 0)
        return CURVE_EP_LOOPBACK;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127 ? CURVE_EP_LOOPBACK : CURVE_EP_REMOTE;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)
            || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127))
            return CURVE_EP_LOOPBACK;
    }
    return CURVE_EP_REMOTE;
}

curve_decision curve_decide(curve_mode mode, curve_ep_class cls, bool have_keys,
                            bool allow_plaintext)
{
    if (cls == CURVE_EP_LOCAL)
        return CURVE_PLAIN;
    switch (mode) {
    case CURVE_MODE_YES:
        return have_keys ? CURVE_ON : CURVE_REFUSED;
    case CURVE_MODE_NO:
        return cls == CURVE_EP_LOOPBACK || allow_plaintext ? CURVE_PLAIN : CURVE_REFUSED;
    case CURVE_MODE_AUTO:
        break;
    }
    if (cls == CURVE_EP_LOOPBACK)
        return CURVE_PLAIN;
    if (have_keys)
        return CURVE_ON;
    return allow_plaintext ? CURVE_PLAIN : CURVE_REFUSED;
}

int curve_mode_parse(const char *word)
{
    if (strcmp(word, "auto") == 0)
        return CURVE_MODE_AUTO;
    if (strcmp(word, "yes") == 0)
        return CURVE_MODE_YES;
    if (strcmp(word, "no") == 0)
        return CURVE_MODE_NO;
    return -1;
}

/* ------------------------------------------------------------ key files */

bool curve_key_valid(const char *text, size_t len)
{
    curve_key_text z;
    uint8_t bin[32];

    if (len != CURVE_KEY_Z85_LEN)
        return false;
    memcpy(z, text, len);
    z[len] = 0;
    return zmq_z85_decode(bin, z) != NULL;
}

/* trim - the line [*s, *e) without surrounding blanks. */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
        (*e)--;
}

int curve_key_parse(const char *text, size_t len, bool need_secret, curve_keypair *kp,
                    char **err)
{
    const char *p = text, *end = text + len;
    bool got_pub = false, got_sec = false;
    int lineno = 0;

    memset(kp, 0, sizeof(*kp));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end, *eq, *v;
        char *dst;

        p = nl ? nl + 1 : end;
        lineno++;
        trim(&s, &e);
        for (eq = s; eq < e && *eq >= 'a' && *eq <= 'z'; eq++)
            ;
        while (eq < e && (*eq == ' ' || *eq == '\t'))
            eq++;
        if (curve_key_valid(s, (size_t)(e - s))) {
            v = s;                  /* a bare key (Z85 has '=' and '#'): the public one */
            dst = kp->pub;
        } else if (s == e || *s == '#') {
            continue;
        } else if (eq < e && *eq == '=') {
            const char *ks = s, *ke = eq;

            trim(&ks, &ke);
            if ((size_t)(ke - ks) == 6 && memcmp(ks, "public", 6) == 0)
                dst = kp->pub;
            else if ((size_t)(ke - ks) == 6 && memcmp(ks, "secret", 6) == 0)
                dst = kp->sec;
            else {
                *err = xasprintf("line %d: expected public=KEY or secret=KEY", lineno);
                return -1;
            }
            v = eq + 1;
        } else {
            *err = xasprintf("line %d: expected public=KEY or secret=KEY", lineno);
            return -1;
        }
        trim(&v, &e);
        if (!curve_key_valid(v, (size_t)(e - v))) {
            *err = xasprintf("line %d: not a Z85 CurveZMQ key (40 characters)", lineno);
            return -1;
        }
        memcpy(dst, v, CURVE_KEY_Z85_LEN);
        dst[CURVE_KEY_Z85_LEN] = 0;
        if (dst == kp->pub)
            got_pub = true;
        else
            got_sec = true;
    }
    if (need_secret) {
        curve_key_text derived;

        if (!got_sec) {
            *err = xasprintf("no secret=KEY line");
            return -1;
        }
        if (zmq_curve_public(derived, kp->sec) != 0) {
            *err = xasprintf("cannot derive the public key: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (got_pub && strcmp(derived, kp->pub) != 0) {
            *err = xasprintf("the public key does not belong to the secret key");
            return -1;
        }
        memcpy(kp->pub, derived, sizeof(derived));
    } else if (!got_pub) {
        *err = xasprintf("no public=KEY line");
        return -1;
    }
    if (!need_secret)
        memset(kp->sec, 0, sizeof(kp->sec));
    return 0;
}

/* read_bounded - a whole file of at most max bytes; NULL and *err. */
static char *read_bounded(const char *path, size_t max, bool secret, size_t *len, char **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *data;
    ssize_t r;

    if (fd < 0) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *err = xasprintf("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (secret && (st.st_mode & 0007)) {
        *err = xasprintf("%s: a secret key readable by others (chmod 600 %s)", path, path);
        close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > max) {
        *err = xasprintf("%s: larger than %zu bytes", path, max);
        close(fd);
        return NULL;
    }
    data = xmalloc(max + 1);
    *len = 0;
    while (*len < max && (r = read(fd, data + *len, max - *len)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = xasprintf("%s: %s", path, strerror(errno));
            free(data);
            close(fd);
            return NULL;
        }
        *len += (size_t)r;
    }
    data[*len] = 0;
    close(fd);
    return data;
}

int curve_key_load(const char *path, bool need_secret, curve_keypair *kp, char **err)
{
    size_t len;
    char *why = NULL, *data = read_bounded(path, CURVE_KEY_FILE_MAX, need_secret, &len, err);
    int rc;

    if (data == NULL)
        return -1;
    rc = curve_key_parse(data, len, need_secret, kp, &why);
    if (rc != 0) {
        *err = xasprintf("%s: %s", path, why);
        free(why);
    }
    memset(data, 0, len);
    free(data);
    return rc;
}

int curve_key_generate(curve_keypair *kp)
{
    memset(kp, 0, sizeof(*kp));
    if (zmq_curve_keypair(kp->pub, kp->sec) != 0)
        return -1;
    return 0;
}

/* write_file - dir/name with mode, through dir/.name.tmp and rename. */
static int write_file(const char *dir, const char *name, const char *text, mode_t mode,
                      char **err)
{
    char *tmp = xasprintf("%s/.%s.tmp", dir, name), *path = xasprintf("%s/%s", dir, name);
    int fd, rc = -1;

    (void)unlink(tmp);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0) {
        *err = xasprintf("%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fchmod(fd, mode) != 0 || fs_write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
        *err = xasprintf("%s: %s", tmp, strerror(errno));
        close(fd);
        (void)unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        *err = xasprintf("rename %s to %s: %s", tmp, path, strerror(errno));
        (void)unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    free(path);
    return rc;
}

int curve_key_save(const char *dir, const char *name, const curve_keypair *kp, bool force,
                   char **err)
{
    char *key = xasprintf("%s.key", name), *pub = xasprintf("%s.pub", name);
    char *kpath = xasprintf("%s/%s", dir, key), *ppath = xasprintf("%s/%s", dir, pub);
    char *text = NULL;
    struct stat st;
    int rc = -1;

    if (!force && (lstat(kpath, &st) == 0 || lstat(ppath, &st) == 0)) {
        rc = 1;
        goto out;
    }
    if (fs_mkdir_p(dir, 0755) != 0) {
        *err = xasprintf("cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    text = xasprintf("# CurveZMQ key pair of %s: keep secret (correio keys generate)\n"
                     "public=%s\nsecret=%s\n", name, kp->pub, kp->sec);
    if (write_file(dir, key, text, 0600, err) != 0)
        goto out;
    memset(text, 0, strlen(text));
    free(text);
    text = xasprintf("# CurveZMQ public key of %s\npublic=%s\n", name, kp->pub);
    if (write_file(dir, pub, text, 0644, err) != 0)
        goto out;
    (void)fs_fsync_dir(dir);
    rc = 0;
out:
    if (text) {
        memset(text, 0, strlen(text));
        free(text);
    }
    free(key);
    free(pub);
    free(kpath);
    free(ppath);
    return rc;
}

/* ------------------------------------------------------------ the state */

/* param_peer - the stage that listens on the endpoints of a parameter:
 * its first word, or the two lists named after their users. */
static const char *param_peer(const char *name)
{
    size_t n = strlen(name);

    if (!((n > 9 && strcmp(name + n - 9, "_endpoint") == 0)
          || (n > 10 && strcmp(name + n - 10, "_endpoints") == 0)))
        return NULL;
    if (strcmp(name, "policy_endpoints") == 0)
        return "router";
    if (strcmp(name, "queue_admin_endpoints") == 0)
        return "delivery";
    for (const char *const *k = curve_key_names; *k; k++) {
        size_t kl = strlen(*k);

        if (strcmp(*k, "ctl") != 0 && strncmp(name, *k, kl) == 0 && name[kl] == '_')
            return *k;
    }
    return NULL;
}

static void ep_add(const char *param, const char *value, const char *peer)
{
    if (strstr(value, "://") == NULL)       /* not a ZeroMQ endpoint */
        return;
    cs.eps = xrealloc(cs.eps, (cs.n_eps + 1) * sizeof(*cs.eps));
    cs.eps[cs.n_eps].param = xstrdup(param);
    cs.eps[cs.n_eps].value = xstrdup(value);
    cs.eps[cs.n_eps].peer = peer;
    cs.n_eps++;
}

/* collect_endpoints - every configured *_endpoint(s) value. */
static void collect_endpoints(const config_t *cfg)
{
    for (const param_def *d = config_params; d->name; d++) {
        const char *peer = param_peer(d->name);

        if (peer == NULL)
            continue;
        if (d->type == PARAM_STR) {
            ep_add(d->name, config_str(cfg, d->name), peer);
        } else if (d->type == PARAM_LIST) {
            for (const char *const *v = config_list(cfg, d->name); v && *v; v++)
                ep_add(d->name, *v, peer);
        }
    }
}

/* ep_param - the parameter an endpoint value comes from, or NULL. */
static const curve_ep *ep_find(const char *endpoint)
{
    for (size_t i = 0; i < cs.n_eps; i++)
        if (strcmp(cs.eps[i].value, endpoint) == 0)
            return &cs.eps[i];
    return NULL;
}

/* ep_port - the port of a tcp:// endpoint, or NULL. */
static const char *ep_port(const char *endpoint)
{
    const char *c;

    if (strncmp(endpoint, "tcp://", 6) != 0 || (c = strrchr(endpoint, ':')) == NULL
        || c < endpoint + 6 || c[1] == 0 || strchr(c, ']') != NULL)
        return NULL;
    return c + 1;
}

const char *curve_peer_of(const char *endpoint)
{
    const curve_ep *e = ep_find(endpoint);
    const char *port, *peer = NULL;

    if (e)
        return e->peer;
    if ((port = ep_port(endpoint)) == NULL)
        return NULL;
    for (size_t i = 0; i < cs.n_eps; i++) {
        const char *p = ep_port(cs.eps[i].value);

        if (p == NULL || strcmp(p, port) != 0)
            continue;
        if (peer && strcmp(peer, cs.eps[i].peer) != 0)
            return NULL;            /* two kinds on that port: cannot tell */
        peer = cs.eps[i].peer;
    }
    return peer;
}

static void state_free(void)
{
    for (size_t i = 0; i < cs.n_eps; i++) {
        free(cs.eps[i].param);
        free(cs.eps[i].value);
    }
    free(cs.eps);
    free(cs.self);
    free(cs.keys_dir);
    free(cs.auth_path);
    free(cs.key_err);
    free(cs.auth);
    free(cs.rejected);
    memset(&cs, 0, sizeof(cs));     /* the secret key too */
}

/* refusal - why plain TCP is refused for param = endpoint. */
static char *refusal(const char *param, const char *endpoint)
{
    const char *p = param ? param : "endpoint";

    if (cs.mode == CURVE_MODE_YES)
        return xasprintf("%s = %s: curve = yes needs this process's key pair (%s); "
                         "run `correio keys generate` or set curve_keys_directory",
                         p, endpoint, cs.key_err ? cs.key_err : "no key");
    return xasprintf("%s = %s is not a loopback address and plain TCP would leave the "
                     "host: make the key pairs (`correio keys generate`, "
                     "curve_keys_directory = %s; %s) or set curve_allow_plaintext = yes",
                     p, endpoint, cs.keys_dir ? cs.keys_dir : "(not set)",
                     cs.key_err ? cs.key_err : "no key");
}

/* ------------------------------------------------------------ ZAP */

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CURVE_KEY_Z85_LEN);
}

static void auth_add(curve_key_text **list, size_t *n, const char *key)
{
    if (*n >= CURVE_AUTH_MAX)
        return;
    *list = xrealloc(*list, (*n + 1) * sizeof(**list));
    memcpy((*list)[*n], key, CURVE_KEY_Z85_LEN);
    (*list)[*n][CURVE_KEY_Z85_LEN] = 0;
    (*n)++;
}

/* auth_read_dir - every valid *.pub of dir. */
static void auth_read_dir(const char *dir, curve_key_text **list, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL) {
        log_warn("curve_authorized_clients: cannot read %s: %m", dir);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        curve_keypair kp;
        char *path, *err = NULL;

        if (l < 5 || de->d_name[0] == '.' || strcmp(de->d_name + l - 4, ".pub") != 0)
            continue;
        path = xasprintf("%s/%s", dir, de->d_name);
        if (curve_key_load(path, false, &kp, &err) == 0)
            auth_add(list, n, kp.pub);
        else
            log_warn("curve_authorized_clients: %s (ignored)", err);
        free(err);
        free(path);
    }
    closedir(d);
}

/* auth_read_file - one key a line: KEY or public=KEY, then anything. */
static void auth_read_file(const char *path, curve_key_text **list, size_t *n)
{
    size_t len;
    char *err = NULL, *data = read_bounded(path, CURVE_AUTH_FILE_MAX, false, &len, &err);
    char *line, *save = NULL;
    int lineno = 0;

    if (data == NULL) {
        log_warn("curve_authorized_clients: %s", err);
        free(err);
        return;
    }
    for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *s = line + strspn(line, " \t");
        size_t kl;

        lineno++;
        kl = strcspn(s, " \t\r");     /* Z85 has '#' and '=': a key is a word */
        if (kl == CURVE_KEY_Z85_LEN && curve_key_valid(s, kl)) {
            auth_add(list, n, s);
            continue;
        }
        if (*s == 0 || *s == '#' || *s == '\r')
            continue;
        if (strncmp(s, "public", 6) == 0 && s[6 + strspn(s + 6, " \t")] == '=') {
            s += 6 + strspn(s + 6, " \t") + 1;
            s += strspn(s, " \t");
        }
        kl = strcspn(s, " \t\r");
        if (curve_key_valid(s, kl))
            auth_add(list, n, s);
        else
            log_warn("curve_authorized_clients: %s line %d: not a Z85 key (ignored)",
                     path, lineno);
    }
    free(data);
}

/* auth_refresh - (re)read the authorised list when its file or
 * directory changed (a key added by rename changes the directory). */
static void auth_refresh(void)
{
    struct stat st;
    curve_key_text *list = NULL;
    size_t n = 0;

    if (stat(cs.auth_path, &st) != 0) {
        /* keep what was read (a transient error must not lock every
         * client out); said once until it is readable again */
        if (!cs.auth_stat_failed)
            log_warn("curve_authorized_clients: %s: %m: keeping the %zu keys read before",
                     cs.auth_path, cs.n_auth);
        cs.auth_stat_failed = true;
        cs.auth_loaded = true;
        return;
    }
    cs.auth_stat_failed = false;
    if (cs.auth_loaded && st.st_mtim.tv_sec == cs.auth_st.st_mtim.tv_sec
        && st.st_mtim.tv_nsec == cs.auth_st.st_mtim.tv_nsec && st.st_size == cs.auth_st.st_size
        && st.st_ino == cs.auth_st.st_ino)
        return;
    if (S_ISDIR(st.st_mode))
        auth_read_dir(cs.auth_path, &list, &n);
    else
        auth_read_file(cs.auth_path, &list, &n);
    if (n > 1)
        qsort(list, n, sizeof(*list), key_cmp);
    free(cs.auth);
    cs.auth = list;
    cs.n_auth = n;
    cs.auth_st = st;
    if (cs.auth_loaded)
        log_info("curve_authorized_clients: %s re-read: %zu keys", cs.auth_path, n);
    cs.auth_loaded = true;
}

static bool auth_allows(const char *key)
{
    auth_refresh();
    return cs.n_auth > 0 && bsearch(key, cs.auth, cs.n_auth, sizeof(*cs.auth), key_cmp);
}

/* reject_first - true the first time key is rejected (log it then). */
static bool reject_first(const char *key)
{
    for (size_t i = 0; i < cs.n_rejected; i++)
        if (memcmp(cs.rejected[i], key, CURVE_KEY_Z85_LEN) == 0)
            return false;
    if (cs.n_rejected < CURVE_REJECTED_MAX)
        auth_add(&cs.rejected, &cs.n_rejected, key);
    return true;
}

static bool frame_is(zmq_msg_t *m, const char *s)
{
    return zmq_msg_size(m) == strlen(s) && memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

/* zap_answer - decide one ZAP request (frames f[0..n)); user gets the
 * client key as the user id. */
static const char *zap_answer(zmq_msg_t *f, int n, const char **text, char *user)
{
    char addr[64], key[CURVE_KEY_Z85_LEN + 1];

    *user = 0;
    if (n < 6 || !frame_is(&f[0], "1.0")) {
        *text = "malformed ZAP request";
        return "500";
    }
    log_printable(addr, sizeof(addr), zmq_msg_data(&f[3]), zmq_msg_size(&f[3]));
    if (!frame_is(&f[5], "CURVE") || n < 7 || zmq_msg_size(&f[6]) != 32) {
        char mech[32];

        log_printable(mech, sizeof(mech), zmq_msg_data(&f[5]), zmq_msg_size(&f[5]));
        log_warn("curve: rejected a %s client from %s: only CURVE clients are admitted",
                 mech, addr);
        *text = "CURVE required";
        return "400";
    }
    if (zmq_z85_encode(key, zmq_msg_data(&f[6]), 32) == NULL) {
        *text = "bad key";
        return "500";
    }
    if (auth_allows(key)) {
        strcpy(user, key);
        *text = "OK";
        return "200";
    }
    if (reject_first(key))
        log_warn("curve: rejected client key %s from %s: not in curve_authorized_clients (%s)",
                 key, addr, cs.auth_path);
    *text = "client key not authorised";
    return "400";
}

static int zap_send(void *sock, const void *data, size_t len, int flags)
{
    while (zmq_send(sock, data, len, flags) < 0) {
        if (zmq_errno() != EINTR)
            return -1;
    }
    return 0;
}

/* zap_main - the ZAP handler: one request, one reply, until the
 * context is terminated. */
static void *zap_main(void *arg)
{
    void *sock = arg;

    for (;;) {
        zmq_msg_t f[CURVE_ZAP_FRAMES];
        int n = 0, more = 1, failed = 0;
        bool overflow = false;
        const char *status, *text;
        char user[CURVE_KEY_Z85_LEN + 1];

        while (more) {
            zmq_msg_t extra, *m = n < CURVE_ZAP_FRAMES ? &f[n] : &extra;

            zmq_msg_init(m);
            if (zmq_msg_recv(m, sock, 0) < 0) {
                zmq_msg_close(m);
                failed = zmq_errno();
                break;
            }
            more = zmq_msg_more(m);
            if (m == &extra) {
                zmq_msg_close(m);       /* more frames than ZAP has */
                overflow = true;
            } else {
                n++;
            }
        }
        if (failed) {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            if (failed == ETERM)
                break;
            if (failed != EINTR)
                log_warn("curve: ZAP receive: %s", zmq_strerror(failed));
            continue;
        }
        status = zap_answer(f, overflow ? 0 : n, &text, user);
        if (zap_send(sock, "1.0", 3, ZMQ_SNDMORE) != 0
            || zap_send(sock, n > 1 ? zmq_msg_data(&f[1]) : "", n > 1 ? zmq_msg_size(&f[1]) : 0,
                        ZMQ_SNDMORE) != 0
            || zap_send(sock, status, 3, ZMQ_SNDMORE) != 0
            || zap_send(sock, text, strlen(text), ZMQ_SNDMORE) != 0
            || zap_send(sock, user, strlen(user), ZMQ_SNDMORE) != 0
            || zap_send(sock, "", 0, 0) != 0) {
            if (zmq_errno() == ETERM) {
                for (int i = 0; i < n; i++)
                    zmq_msg_close(&f[i]);
                break;
            }
            log_warn("curve: ZAP reply: %s", zmq_strerror(zmq_errno()));
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
    zmq_close(sock);
    return NULL;
}

/* zap_start - bind the ZAP handler's socket here (before any socket of
 * the stage exists) and run it in its own thread. */
static int zap_start(void *zctx, char **err)
{
    void *sock = zmq_socket(zctx, ZMQ_REP);
    int zero = 0, rc;

    if (sock == NULL || zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0
        || zmq_bind(sock, CURVE_ZAP_ENDPOINT) != 0) {
        *err = xasprintf("curve: cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        if (sock)
            zmq_close(sock);
        return -1;
    }
    auth_refresh();
    if ((rc = pthread_create(&cs.zap_thread, NULL, zap_main, sock)) != 0) {
        *err = xasprintf("curve: cannot start the ZAP thread: %s", strerror(rc));
        zmq_close(sock);
        return -1;
    }
    cs.zap_running = true;
    return 0;
}

/* ------------------------------------------------------------ init */

int curve_init(void *zctx, const config_t *cfg, const char *self, char **err)
{
    const char *auth = config_str(cfg, "curve_authorized_clients");
    char *path;
    int mode = curve_mode_parse(config_str(cfg, "curve"));

    *err = NULL;
    if (cs.zap_running)
        log_panic("curve_init: called twice in a stage");
    state_free();
    if (mode < 0) {
        *err = xasprintf("curve = %s: expected auto, yes or no", config_str(cfg, "curve"));
        return -1;
    }
    cs.mode = (curve_mode)mode;
    cs.allow_plaintext = config_bool(cfg, "curve_allow_plaintext");
    cs.self = xstrdup(self);
    cs.keys_dir = config_path(cfg, "curve_keys_directory");
    cs.auth_path = auth[0] ? config_path(cfg, "curve_authorized_clients")
                           : xstrdup(cs.keys_dir);
    collect_endpoints(cfg);

    path = xasprintf("%s/%s.key", cs.keys_dir, self);
    if (cs.mode != CURVE_MODE_NO) {
        if (access(path, F_OK) != 0 && errno == ENOENT) {
            cs.key_err = xasprintf("%s: no such file", path);
        } else if (curve_key_load(path, true, &cs.kp, &cs.key_err) == 0) {
            cs.have_keys = true;
        } else if (zctx) {
            *err = xasprintf("curve_keys_directory: %s", cs.key_err);
            free(path);
            return -1;
        }
    } else {
        cs.key_err = xasprintf("curve = no");
    }
    free(path);
    if (cs.have_keys && !zmq_has("curve")) {
        *err = xasprintf("curve: this libzmq has no CURVE support");
        return -1;
    }
    if (zctx == NULL)
        return 0;
    for (size_t i = 0; i < cs.n_eps; i++) {
        curve_ep_class cls = curve_endpoint_class(cs.eps[i].value);

        if (curve_decide(cs.mode, cls, cs.have_keys, cs.allow_plaintext) == CURVE_REFUSED) {
            *err = refusal(cs.eps[i].param, cs.eps[i].value);
            return -1;
        }
    }
    if (cs.have_keys && zap_start(zctx, err) != 0)
        return -1;
    log_debug("curve: %s, key pair %s, authorised clients %s",
              cs.mode == CURVE_MODE_YES ? "yes" : cs.mode == CURVE_MODE_NO ? "no" : "auto",
              cs.have_keys ? "loaded" : "none", cs.auth_path);
    return 0;
}

void curve_finish(void)
{
    if (cs.zap_running)
        pthread_join(cs.zap_thread, NULL);
    state_free();
}

/* ------------------------------------------------------------ sockets */

static int setopt(void *sock, int opt, const void *val, size_t len, const char *what,
                  char **err)
{
    if (zmq_setsockopt(sock, opt, val, len) == 0)
        return 0;
    *err = xasprintf("curve: %s: %s", what, zmq_strerror(zmq_errno()));
    return -1;
}

/* decide - the decision for endpoint, with *err set when refused. */
static curve_decision decide(const char *endpoint, char **err)
{
    curve_decision d = curve_decide(cs.mode, curve_endpoint_class(endpoint), cs.have_keys,
                                    cs.allow_plaintext);

    if (d == CURVE_REFUSED) {
        const curve_ep *e = ep_find(endpoint);

        *err = refusal(e ? e->param : NULL, endpoint);
    }
    return d;
}

int curve_server_setup(void *sock, const char *endpoint, char **err)
{
    int one = 1;
    curve_decision d = decide(endpoint, err);

    if (d != CURVE_ON)
        return d == CURVE_REFUSED ? -1 : 0;
    if (!cs.zap_running)
        log_warn("curve: %s has no ZAP handler in this process: any client that knows "
                 "the server key is admitted", endpoint);
    if (setopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one), "ZMQ_CURVE_SERVER", err) != 0
        || setopt(sock, ZMQ_CURVE_SECRETKEY, cs.kp.sec, CURVE_KEY_Z85_LEN + 1,
                  "ZMQ_CURVE_SECRETKEY", err) != 0
        || setopt(sock, ZMQ_ZAP_DOMAIN, CURVE_ZAP_DOMAIN, strlen(CURVE_ZAP_DOMAIN),
                  "ZMQ_ZAP_DOMAIN", err) != 0)
        return -1;
    return 0;
}

int curve_client_setup(void *sock, const char *endpoint, const char *peer, char **err)
{
    curve_decision d = decide(endpoint, err);
    curve_keypair server;
    char *path;
    int rc, mech = 0;
    size_t len = sizeof(mech);

    if (d == CURVE_REFUSED)
        return -1;
    if (d == CURVE_PLAIN) {
        /* a socket that connected with Curve before goes back to NULL */
        if (zmq_getsockopt(sock, ZMQ_MECHANISM, &mech, &len) == 0 && mech == ZMQ_CURVE) {
            int zero = 0;

            return setopt(sock, ZMQ_CURVE_SERVER, &zero, sizeof(zero), "ZMQ_CURVE_SERVER",
                          err);
        }
        return 0;
    }
    if (peer == NULL && (peer = curve_peer_of(endpoint)) == NULL) {
        *err = xasprintf("curve: cannot tell which stage listens on %s, so its server key "
                         "is unknown (name it in the stage's *_endpoint parameter)", endpoint);
        return -1;
    }
    path = xasprintf("%s/%s.pub", cs.keys_dir, peer);
    rc = curve_key_load(path, false, &server, err);
    free(path);
    if (rc != 0) {
        char *why = *err;

        *err = xasprintf("curve: the server key of %s for %s: %s", peer, endpoint, why);
        free(why);
        return -1;
    }
    if (setopt(sock, ZMQ_CURVE_SERVERKEY, server.pub, CURVE_KEY_Z85_LEN + 1,
               "ZMQ_CURVE_SERVERKEY", err) != 0
        || setopt(sock, ZMQ_CURVE_PUBLICKEY, cs.kp.pub, CURVE_KEY_Z85_LEN + 1,
                  "ZMQ_CURVE_PUBLICKEY", err) != 0
        || setopt(sock, ZMQ_CURVE_SECRETKEY, cs.kp.sec, CURVE_KEY_Z85_LEN + 1,
                  "ZMQ_CURVE_SECRETKEY", err) != 0)
        return -1;
    return 0;
}
