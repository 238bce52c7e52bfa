/* map_test.c - lookup tables: hash (map_build + LMDB), cidr, pcre, their
 * file errors ("PATH:LINE: problem") and reloading a changed file.
 *
 * The once-a-second reload check reads the clock through time_mono_ms();
 * this program defines its own (a link seam: libcorreio.a's timeutil.o is
 * then not linked in), so a test moves time forward instead of sleeping.
 * File changes are made visible by setting the mtime with utimensat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "map.h"
#include "timeutil.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/map_test.XXXXXX";
static int64_t fake_ms = 1000000;

int64_t time_mono_ms(void)
{
    return fake_ms;
}

/* ---------------------------------------------------------------- helpers */

/* put - write len bytes (strlen when len is 0) as tmpdir/name; the path
 * is malloc'd. */
static char *put(const char *name, const char *text, size_t len)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, text, len ? len : strlen(text)), 0);
    close(fd);
    return path;
}

/* set_mtime - a fixed mtime, so a rewrite is a change whatever the clock. */
static void set_mtime(const char *path, time_t when)
{
    struct timespec ts[2] = {{when, 0}, {when, 0}};

    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* want - lookup of key in m gives value (NULL: not found). */
static void want(map_t *m, const char *key, const char *value)
{
    char *got = NULL;
    map_status s = map_lookup(m, key, &got);

    if (value == NULL) {
        if (s != MAP_NOTFOUND)
            fail_msg("%s: \"%s\": want not found, got %d \"%s\"", map_spec(m), key, s,
                     got ? got : "");
    } else {
        if (s != MAP_FOUND)
            fail_msg("%s: \"%s\": want \"%s\", got status %d", map_spec(m), key, value, s);
        if (strcmp(got, value) != 0)
            fail_msg("%s: \"%s\": want \"%s\", got \"%s\"", map_spec(m), key, value, got);
    }
    free(got);
}

static map_t *open_ok(const char *spec)
{
    char *err = NULL;
    map_t *m = map_open(spec, NULL, &err);

    if (m == NULL)
        fail_msg("map_open %s: %s", spec, err);
    return m;
}

/* stderr capture, for the warnings log_warn writes to fd 2 */
static int saved_stderr = -1;

static void capture_begin(void)
{
    char *path = xasprintf("%s/stderr", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
    free(path);
}

static char *capture_end(void)
{
    char *path = xasprintf("%s/stderr", tmpdir);
    char *text;

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    text = fs_read_file(path, NULL);
    unlink(path);
    free(path);
    return text ? text : xstrdup("");
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---------------------------------------------------------------- hash */

typedef struct kv {
    const char *key;
    const char *value;      /* NULL: not found */
} kv;

static const struct hash_case {
    const char *text;
    long        entries;
    kv          lookups[6];
} hash_cases[] = {
    /* keys are folded at build and at lookup; values stay as written */
    {"Postmaster  root@Example.COM\n", 1,
     {{"postmaster", "root@Example.COM"}, {"POSTMASTER", "root@Example.COM"},
      {"PostMaster", "root@Example.COM"}, {"postmaste", NULL}, {"", NULL}}},
    /* comments, blank lines, continuation lines (joined with one space) */
    {"# a comment\n\nlist one,\n  two,\n# in between\n\tthree\n   # indented comment\nnext x\n", 2,
     {{"list", "one, two, three"}, {"next", "x"}, {"#", NULL}}},
    /* CRLF, inner white space kept, trailing white space dropped */
    {"k a  b\tc \r\nk2\tv2\r\n", 2, {{"k", "a  b\tc"}, {"K2", "v2"}}},
    /* an empty file is an empty table */
    {"", 0, {{"anything", NULL}}},
    /* no newline at the end */
    {"last word", 1, {{"last", "word"}}},
};

static void test_hash_lookups(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hash_cases) / sizeof(hash_cases[0]); i++) {
        const struct hash_case *c = &hash_cases[i];
        char *path = put("aliases", c->text, 0);
        char *spec = xasprintf("hash:%s", path);
        char *err = NULL;
        long n = map_build(path, &err);
        map_t *m;

        if (n != c->entries)
            fail_msg("case %zu: map_build gave %ld (%s), want %ld", i, n, err ? err : "",
                     c->entries);
        m = open_ok(spec);
        for (size_t j = 0; j < 6 && c->lookups[j].key; j++)
            want(m, c->lookups[j].key, c->lookups[j].value);
        map_close(&m);
        assert_null(m);
        free(spec);
        free(path);
    }
}

static void test_hash_duplicates(void **state)
{
    char *path = put("dups", "a 1\nb 2\nA 3\nc 4\na 5\n", 0);
    char *spec = xasprintf("lmdb:%s", path);
    char *err = NULL, *log, *w1, *w2;
    map_t *m;
    long n;

    (void)state;
    capture_begin();
    n = map_build(path, &err);
    log = capture_end();
    assert_int_equal(n, 3);
    w1 = xasprintf("warning: %s:3: duplicate key \"a\" (also on line 1); "
                   "the last one wins\n", path);
    w2 = xasprintf("warning: %s:5: duplicate key \"a\" (also on line 3); "
                   "the last one wins\n", path);
    if (!strstr(log, w1) || !strstr(log, w2) || count_of(log, "warning:") != 2)
        fail_msg("duplicate warnings:\n%s", log);
    m = open_ok(spec);
    want(m, "a", "5");
    want(m, "b", "2");
    want(m, "c", "4");
    map_close(&m);
    free(w1);
    free(w2);
    free(log);
    free(spec);
    free(path);
}

/* map_build leaves only FILE and FILE.lmdb: no temporary, no lock file. */
static void test_hash_build_files(void **state)
{
    char *path = put("clean", "k v\n", 0);
    char *lmdb = xasprintf("%s.lmdb", path);
    char *err = NULL;
    struct stat st;
    int entries = 0;

    (void)state;
    chmod(path, 0640);
    assert_int_equal(map_build(path, &err), 1);
    assert_int_equal(map_build(path, &err), 1);    /* again, over the old one */
    assert_int_equal(stat(lmdb, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);     /* the source's mode */
    {
        DIR *d = opendir(tmpdir);
        struct dirent *de;

        assert_non_null(d);
        while ((de = readdir(d)) != NULL)
            entries += strncmp(de->d_name, "clean", 5) == 0;
        closedir(d);
    }
    assert_int_equal(entries, 2);
    unlink(lmdb);
    free(lmdb);
    free(path);
}

/* ---------------------------------------------------------------- errors */

static const struct error_case {
    const char *type;       /* "hash" is checked with map_build */
    const char *text;
    size_t      len;        /* 0: strlen */
    const char *want;       /* after "PATH" */
} error_cases[] = {
    {"hash", "a 1\nnovalue\n", 0, ":2: key \"novalue\" has no value"},
    {"hash", "a 1\n\n# c\nnovalue   \r\n", 0, ":4: key \"novalue\" has no value"},
    {"hash", "  a 1\n", 0,
     ":1: continuation line (it starts with white space) with no entry before it"},
    {"hash", "# c\n\n\ta 1\n", 0,
     ":3: continuation line (it starts with white space) with no entry before it"},
    {"hash", "a 1\nb x\0y\n", 10, ":2: NUL byte in the line (not a text file?)"},
    {"cidr", "192.0.2.0/24 ok\n10.0.0.0/33 x\n", 0, ":2: \"10.0.0.0/33\": prefix length above 32"},
    {"cidr", "2001:db8::/129 x\n", 0, ":1: \"2001:db8::/129\": prefix length above 128"},
    {"cidr", "10.0.0.0/x y\n", 0, ":1: \"10.0.0.0/x\": bad prefix length"},
    {"cidr", "# c\n192.0.2.77/24 x\n", 0,
     ":2: \"192.0.2.77/24\" has host bits set (did you mean 192.0.2.0/24?)"},
    {"cidr", "2001:db8::1/32 x\n", 0,
     ":1: \"2001:db8::1/32\" has host bits set (did you mean 2001:db8::/32?)"},
    {"cidr", "example.com x\n", 0,
     ":1: \"example.com\" is not a network (use 192.0.2.0/24, 2001:db8::/32 or one address)"},
    {"cidr", "10.0.0.0/8\n", 0, ":1: network \"10.0.0.0/8\" has no value"},
    {"pcre", "/a/ x\n/(b/ y\n", 0, ":2: bad pattern: missing closing parenthesis (at offset 2)"},
    {"pcre", "/a x\n", 0, ":1: no closing / after the pattern"},
    {"pcre", "/a/q x\n", 0, ":1: unknown flag 'q' after the pattern (flags: i m s x A E U X)"},
    {"pcre", "/a/ x\n/b/\n", 0, ":2: the pattern has no value"},
    {"pcre", "/(a)/ $2\n", 0, ":1: $2 in the value, but the pattern has 1 group"},
    {"pcre", "/a/ ${1}\n", 0, ":1: $1 in the value, but the pattern has 0 groups"},
    {"pcre", "!/(a)/ $1\n", 0,
     ":1: $1 in the value of a negated pattern (!/.../ has no groups when it applies)"},
    {"pcre", "/a/ cost $5x$\n", 0,
     ":1: $5 in the value, but the pattern has 0 groups"},
    {"pcre", "/(a)/ $x\n", 0,
     ":1: bad $ in the value (use $1 .. $9, ${1} or $(1) for a group, $$ for a dollar sign)"},
    {"pcre", "/(a)/ ${1\n", 0,
     ":1: bad $ in the value (use $1 .. $9, ${1} or $(1) for a group, $$ for a dollar sign)"},
    {"pcre", "/a/ x\nif /b/\n/c/ y\n", 0, ":2: if without endif"},
    {"pcre", "if /a/\nif /b/\nendif\n", 0, ":1: if without endif"},
    {"pcre", "/a/ x\nendif\n", 0, ":2: endif without if"},
    {"pcre", "if /a/ x\nendif\n", 0,
     ":1: text after the pattern of an if (its rules go on the next lines)"},
    {"pcre", "if /a/\nendif x\n", 0, ":2: text after endif"},
    {"pcre", "abc x\n", 0, ":1: expected /pattern/ (or !/pattern/, if, endif)"},
    {"pcre", "if /a/\n  /b/ x\nendif\n", 0,
     ":1: text after the pattern of an if (its rules go on the next lines)"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        const struct error_case *c = &error_cases[i];
        char *path = put("bad", c->text, c->len);
        char *wanted = xasprintf("%s%s", path, c->want);
        char *err = NULL;

        if (strcmp(c->type, "hash") == 0) {
            if (map_build(path, &err) != -1)
                fail_msg("case %zu: map_build accepted it", i);
        } else {
            char *spec = xasprintf("%s:%s", c->type, path);
            map_t *m = map_open(spec, NULL, &err);

            if (m != NULL)
                fail_msg("case %zu: map_open %s accepted it", i, spec);
            free(spec);
        }
        if (err == NULL || strcmp(err, wanted) != 0)
            fail_msg("case %zu:\n want %s\n got  %s", i, wanted, err ? err : "(null)");
        free(err);
        free(wanted);
        free(path);
    }
}

/* limits: a logical line of more than 64 KiB, a key LMDB cannot hold */
static void test_limits(void **state)
{
    size_t big = 40000;
    char *text = xmalloc(2 * big + 16), *p = text;
    char *path, *wanted, *err = NULL;
    MDB_env *env;
    int maxkey;

    (void)state;
    /* line 2 starts an entry that continuation makes too long */
    p += sprintf(p, "a 1\nk ");
    memset(p, 'v', big);
    p += big;
    p += sprintf(p, "\n ");
    memset(p, 'w', big);
    p += big;
    *p++ = '\n';
    *p = 0;
    path = put("long", text, 0);
    wanted = xasprintf("%s:2: entry longer than 65536 bytes", path);
    assert_int_equal(map_build(path, &err), -1);
    assert_string_equal(err, wanted);
    xfree(&err);
    free(wanted);
    free(path);

    assert_int_equal(mdb_env_create(&env), 0);
    maxkey = mdb_env_get_maxkeysize(env);
    mdb_env_close(env);
    memset(text, 'k', (size_t)maxkey + 1);
    strcpy(text + maxkey + 1, " v\n");
    path = put("longkey", text, 0);
    wanted = xasprintf("%s:1: key longer than %d bytes", path, maxkey);
    assert_int_equal(map_build(path, &err), -1);
    assert_string_equal(err, wanted);
    xfree(&err);
    free(wanted);
    /* a key just at the limit is fine, and can be looked up */
    text[maxkey - 1] = ' ';
    strcpy(text + maxkey, "v\n");
    free(put("longkey", text, 0));
    assert_int_equal(map_build(path, &err), 1);
    {
        char *spec = xasprintf("hash:%s", path);
        map_t *m = open_ok(spec);

        text[maxkey - 1] = 0;
        want(m, text, "v");
        memset(text, 'k', (size_t)maxkey + 1);
        text[maxkey + 1] = 0;
        want(m, text, NULL);
        map_close(&m);
        free(spec);
    }
    free(path);
    free(text);
}

static void test_open_errors(void **state)
{
    char *path = put("source", "k v\n", 0);
    char *spec, *wanted, *err = NULL;
    map_t *m;

    (void)state;
    /* no .lmdb yet: say what to run */
    spec = xasprintf("hash:%s", path);
    wanted = xasprintf("%s.lmdb: not found; run correio map build %s", path, path);
    assert_null(map_open(spec, NULL, &err));
    assert_string_equal(err, wanted);
    xfree(&err);
    free(spec);
    /* a bare path is hash: */
    assert_null(map_open(path, NULL, &err));
    assert_string_equal(err, wanted);
    xfree(&err);
    free(wanted);
    /* relative to dir */
    assert_int_equal(map_build(path, &err), 1);
    m = map_open("hash:source", tmpdir, &err);
    if (m == NULL)
        fail_msg("relative: %s", err);
    assert_string_equal(map_spec(m), "hash:source");
    want(m, "K", "v");
    map_close(&m);
    m = map_open(path, NULL, &err);     /* a bare path: hash:, spec as given */
    assert_non_null(m);
    assert_string_equal(map_spec(m), path);
    want(m, "k", "v");
    map_close(&m);
    map_close(&m);          /* NULL is fine */

    assert_null(map_open("btree:/etc/x", NULL, &err));
    assert_string_equal(err, "btree:/etc/x: unknown table type \"btree\" "
                             "(use hash, lmdb, cidr or pcre)");
    xfree(&err);
    assert_null(map_open("pcre:", NULL, &err));
    assert_string_equal(err, "pcre:: no file name after the table type");
    xfree(&err);
    spec = xasprintf("pcre:%s/missing", tmpdir);
    wanted = xasprintf("%s/missing: cannot open: No such file or directory", tmpdir);
    assert_null(map_open(spec, NULL, &err));
    assert_string_equal(err, wanted);
    xfree(&err);
    free(wanted);
    free(spec);
    /* a text file is not an LMDB table */
    free(put("source.lmdb", "not lmdb\n", 0));
    spec = xasprintf("hash:%s", path);
    assert_null(map_open(spec, NULL, &err));
    assert_non_null(strstr(err, "run correio map build"));
    xfree(&err);
    free(spec);
    free(path);
}

/* ---------------------------------------------------------------- cidr */

static void test_cidr(void **state)
{
    char *path = put("clients",
                     "# first match wins\n"
                     "192.0.2.0/24     net24\n"
                     "192.0.2.1        host (never: the /24 comes first)\n"
                     "[2001:db8::]/32  v6net\n"
                     "2001:db8:1::1    never\n"
                     "[198.51.100.7]   bracketed\n"
                     "::1              loopback6\n"
                     "0.0.0.0/0        any4\n", 0);
    char *spec = xasprintf("cidr:%s", path);
    map_t *m = open_ok(spec);
    static const kv cases[] = {
        {"192.0.2.1", "net24"},
        {"192.0.2.255", "net24"},
        {"192.0.3.1", "any4"},
        {"198.51.100.7", "bracketed"},
        {"[192.0.2.9]", "net24"},
        {"::ffff:192.0.2.5", "net24"},     /* an IPv4-mapped client is IPv4 */
        {"2001:db8::1", "v6net"},
        {"2001:DB8:1::1", "v6net"},
        {"::1", "loopback6"},
        {"[::1]", "loopback6"},
        {"2001:db9::1", NULL},             /* 0.0.0.0/0 is IPv4 only */
        {"::2", NULL},
        {"not-an-ip", NULL},
        {"", NULL},
        {"192.0.2.1/32", NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        want(m, cases[i].key, cases[i].value);
    map_close(&m);
    free(spec);
    free(path);
}

/* ---------------------------------------------------------------- pcre */

static void test_pcre(void **state)
{
    char *path = put("checks",
                     "# Postfix pcre_table(5)\n"
                     "/^(.+)@(example\\.com)$/     local=$1 domain=${2}\n"
                     "/^CaseSensitive$/i          cs\n"
                     "/^dot.all$/                 dotall by default\n"
                     "/^nodot.all$/s              never: s turns dotall off\n"
                     "/^multi$/m                  multi\n"
                     "/^(anch)/A                  anchored $(1)\n"
                     "~^tilde/(slash)$~           tilde $1\n"
                     "/^x y$/                     space\n"
                     "/ ^ x y z $ /x              extended\n"
                     "/^long$/                    one\n"
                     "   two\n"
                     "IF /\\.test$/\n"
                     "/^a(b)?c@/                  group=[$1] cost $$5\n"
                     "!/^z/                       not z\n"
                     "endif\n"
                     "if /^nest/\n"
                     "if !/^nesting/\n"
                     "/./                         nest but not nesting\n"
                     "endif\n"
                     "/./                         nesting...\n"
                     "endif\n", 0);
    char *spec = xasprintf("pcre:%s", path);
    map_t *m = open_ok(spec);
    static const kv cases[] = {
        {"Joe@EXAMPLE.com", "local=Joe domain=EXAMPLE.com"},   /* case-insensitive */
        {"CaseSensitive", "cs"},
        {"casesensitive", NULL},                               /* "i": case matters */
        {"dot\nall", "dotall by default"},
        {"nodot\nall", NULL},
        {"first\nmulti", "multi"},
        {"anchor", "anchored anch"},
        {"tilde/slash", "tilde slash"},
        {"x y", "space"},
        {"xyz", "extended"},
        {"long", "one two"},
        {"ac@b.test", "group=[] cost $5"},                     /* unset group: empty */
        {"abc@b.test", "group=[b] cost $5"},
        {"q@b.TEST", "not z"},
        {"z@b.test", NULL},                                    /* the if block ends */
        {"nest1", "nest but not nesting"},
        {"nesting", "nesting..."},
        {"other", NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        want(m, cases[i].key, cases[i].value);
    map_close(&m);
    free(spec);
    free(path);
}

/* ---------------------------------------------------------------- reload */

static void test_reload_pcre(void **state)
{
    char *path = put("reload", "/^k$/ v1\n", 0);
    char *spec = xasprintf("pcre:%s", path);
    char *log, *warning;
    map_t *m;

    (void)state;
    set_mtime(path, 1000000000);
    m = open_ok(spec);
    want(m, "k", "v1");

    /* same size, same inode: only the mtime says it changed */
    free(put("reload", "/^k$/ v2\n", 0));
    set_mtime(path, 1000000100);
    want(m, "k", "v1");             /* looked at once a second at most */
    fake_ms += 999;
    want(m, "k", "v1");
    fake_ms += 1;
    want(m, "k", "v2");

    /* a bad new file: the old contents stay, one warning */
    free(put("reload", "/^k$/ v3\n/(/ bad\n", 0));
    set_mtime(path, 1000000200);
    capture_begin();
    for (int i = 0; i < 3; i++) {
        fake_ms += 1000;
        want(m, "k", "v2");
    }
    log = capture_end();
    warning = xasprintf("warning: %s:2: bad pattern: missing closing parenthesis (at offset 1); "
                        "still using the table loaded before (%s)\n", path, spec);
    if (count_of(log, "warning:") != 1 || strstr(log, warning) == NULL)
        fail_msg("want one warning\n%s\ngot\n%s", warning, log);
    free(warning);
    free(log);

    /* fixed: loaded again */
    free(put("reload", "/^k$/ v4\n", 0));
    set_mtime(path, 1000000300);
    fake_ms += 1000;
    want(m, "k", "v4");

    /* removed: still answers, warns once */
    unlink(path);
    capture_begin();
    for (int i = 0; i < 3; i++) {
        fake_ms += 1000;
        want(m, "k", "v4");
    }
    log = capture_end();
    assert_int_equal(count_of(log, "warning:"), 1);
    assert_non_null(strstr(log, "cannot open: No such file or directory"));
    free(log);
    map_close(&m);
    free(spec);
    free(path);
}

static void test_reload_hash(void **state)
{
    char *path = put("virtual", "a@example.com alice\n", 0);
    char *spec = xasprintf("hash:%s", path);
    char *lmdb = xasprintf("%s.lmdb", path);
    char *err = NULL, *log;
    map_t *m;

    (void)state;
    assert_int_equal(map_build(path, &err), 1);
    m = open_ok(spec);
    want(m, "A@Example.com", "alice");
    want(m, "b@example.com", NULL);

    free(put("virtual", "a@example.com alice2\nb@example.com bob\n", 0));
    assert_int_equal(map_build(path, &err), 2);
    want(m, "b@example.com", NULL);     /* not looked at yet */
    fake_ms += 1000;
    want(m, "b@example.com", "bob");
    want(m, "a@example.com", "alice2");

    /* the .lmdb disappears: the old table stays, one warning */
    unlink(lmdb);
    capture_begin();
    for (int i = 0; i < 3; i++) {
        fake_ms += 1000;
        want(m, "b@example.com", "bob");
    }
    log = capture_end();
    assert_int_equal(count_of(log, "warning:"), 1);
    assert_non_null(strstr(log, "not found; run correio map build"));
    free(log);

    /* built again: picked up */
    free(put("virtual", "b@example.com bob3\n", 0));
    assert_int_equal(map_build(path, &err), 1);
    fake_ms += 1000;
    want(m, "b@example.com", "bob3");
    want(m, "a@example.com", NULL);
    map_close(&m);
    free(lmdb);
    free(spec);
    free(path);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_lookups),
        cmocka_unit_test(test_hash_duplicates),
        cmocka_unit_test(test_hash_build_files),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_pcre),
        cmocka_unit_test(test_reload_pcre),
        cmocka_unit_test(test_reload_hash),
    };
    int rc;

    if (mkdtemp(tmpdir) == NULL)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
