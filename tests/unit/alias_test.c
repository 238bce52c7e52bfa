/* alias_test.c - virtual_alias_maps and alias_maps expansion: one to
 * many, the catch-all, keep-a-copy, recursion, loops, the depth and size
 * limits, the recipient delimiter, duplicates and bad values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "alias.h"
#include "buf.h"
#include "map.h"
#include "xalloc.h"

static char dir[] = "/tmp/alias_test.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    xfree(&path);
}

/* build_map - write name as a text table and compile it (hash:). */
static void build_map(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name), *err = NULL;
    write_file(name, text);
    if (map_build(path, &err) < 0)
        fail_msg("map_build %s: %s", name, err);
    xfree(&path);
}

static config_t *load(const char *extra)
{
    char *text = xasprintf("myhostname = mx.example.test\n"
                           "mydestination = example.test, mx.example.test\n"
                           "virtual_alias_maps = hash:virtual\n"
                           "alias_maps = hash:aliases\n%s", extra);
    char *err = NULL;
    write_file("correio.conf", text);
    xfree(&text);
    config_t *cfg = config_load(dir, &err);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    build_map("virtual",
              "team@virt.test        ann@example.test, bob@remote.test\n"
              "spaced@virt.test      ann@example.test   bob@remote.test,,carl@remote.test\n"
              "@catch.test           bucket@example.test\n"
              "known@catch.test      known@example.test\n"
              "keep@virt.test        keep@virt.test, copy@remote.test\n"
              "Chain1@virt.test      chain2@virt.test\n"
              "chain2@virt.test      chain3@virt.test\n"
              "chain3@virt.test      end@remote.test\n"
              "loop1@virt.test       loop2@virt.test\n"
              "loop2@virt.test       loop3@virt.test\n"
              "loop3@virt.test       loop1@virt.test\n"
              "ka@virt.test          ka@virt.test, kb@virt.test\n"
              "kb@virt.test          ka@virt.test, b-final@remote.test\n"
              "user@virt.test        person@remote.test\n"
              "user+exact@virt.test  exact@remote.test\n"
              "both@virt.test        team@virt.test, list@virt.test\n"
              "list@virt.test        bob@remote.test, dora@remote.test\n"
              "self@virt.test        self@virt.test\n"
              "nodomain@virt.test    alice\n"
              "staff@example.test    viaVirtual@remote.test\n");
    build_map("aliases",
              "postmaster            root\n"
              "root                  ann, ops@remote.test\n"
              "staff                 never@remote.test\n"
              "pipe                  |/bin/cat\n"
              "include               :include:/etc/list\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    return 0;
}

typedef struct alias_case {
    const char *address;
    int         rc;         /* alias_expand's */
    const char *result;     /* the addresses, space-separated, or the error */
    bool        expanded;
} alias_case;

static void check_cases(const char *conf, const alias_case *cases, size_t n)
{
    config_t *cfg = load(conf);
    char *err = NULL;
    alias_t *a = alias_open(cfg, &err);
    if (!a)
        fail_msg("alias_open: %s", err);
    for (size_t i = 0; i < n; i++) {
        const alias_case *c = &cases[i];
        alias_expansion x;
        int rc = alias_expand(a, cfg, c->address, &x);
        if (rc != c->rc)
            fail_msg("%s: rc %d, wanted %d", c->address, rc, c->rc);
        if (rc < 0)
            continue;
        buf_t b = BUF_INIT;
        if (x.error)
            buf_append_str(&b, x.error);
        for (size_t k = 0; k < x.n; k++) {
            if (k)
                buf_append_str(&b, " ");
            buf_append_str(&b, x.addr[k]);
        }
        char *got = buf_steal(&b, NULL);
        if (strcmp(got ? got : "", c->result) || x.expanded != c->expanded)
            fail_msg("%s: got \"%s\" expanded=%d, wanted \"%s\" expanded=%d", c->address,
                     got ? got : "", x.expanded, c->result, c->expanded);
        xfree(&got);
        alias_expansion_free(&x);
    }
    alias_close(&a);
    config_free(&cfg);
}

static const alias_case basic_cases[] = {
    {"nobody@virt.test", 0, "nobody@virt.test", false},
    {"team@virt.test", 0, "ann@example.test bob@remote.test", true},
    {"TEAM@Virt.Test", 0, "ann@example.test bob@remote.test", true},
    {"spaced@virt.test", 0, "ann@example.test bob@remote.test carl@remote.test", true},
    /* catch-all, but an address of its own wins */
    {"anyone@catch.test", 0, "bucket@example.test", true},
    {"known@catch.test", 0, "known@example.test", true},
    /* keep a copy: delivered, not expanded again */
    {"keep@virt.test", 0, "keep@virt.test copy@remote.test", true},
    {"self@virt.test", 0, "self@virt.test", true},
    /* recursion, keys are case-insensitive */
    {"chain1@virt.test", 0, "end@remote.test", true},
    /* a real loop, and a loop back to an address that keeps a copy */
    {"loop1@virt.test", 0,
     "5.4.6 alias loop: loop1@virt.test -> loop2@virt.test -> loop3@virt.test -> loop1@virt.test",
     true},
    {"ka@virt.test", 0, "ka@virt.test b-final@remote.test", true},
    /* a person on two lists gets one copy */
    {"both@virt.test", 0, "ann@example.test bob@remote.test dora@remote.test", true},
    /* no delimiter: user+tag is a different address */
    {"user+tag@virt.test", 0, "user+tag@virt.test", false},
    /* alias_maps: local parts, mydestination only, virtual first */
    {"postmaster@example.test", 0, "ann@example.test ops@remote.test", true},
    {"root@mx.example.test", 0, "ann@mx.example.test ops@remote.test", true},
    {"postmaster", 0, "ann@mx.example.test ops@remote.test", true},
    {"root@virt.test", 0, "root@virt.test", false},
    {"staff@example.test", 0, "viaVirtual@remote.test", true},
    /* values that are not allowed: the recipient waits */
    {"nodomain@virt.test", -1, "", false},
    {"pipe@example.test", -1, "", false},
    {"include@example.test", -1, "", false},
};

static void test_alias_basic(void **state)
{
    (void)state;
    check_cases("", basic_cases, sizeof basic_cases / sizeof basic_cases[0]);
}

static const alias_case delimiter_cases[] = {
    {"user+exact@virt.test", 0, "exact@remote.test", true},
    /* the unmatched extension travels on, as written */
    {"user+Tag@virt.test", 0, "person+Tag@remote.test", true},
    {"user-x@virt.test", 0, "person-x@remote.test", true},
    {"anyone+x@catch.test", 0, "bucket+x@example.test", true},
    {"root+x@example.test", 0, "ann@example.test ops@remote.test", true},
    {"+user@virt.test", 0, "+user@virt.test", false},
};

static void test_alias_delimiter(void **state)
{
    (void)state;
    check_cases("recipient_delimiter = +-\n", delimiter_cases,
                sizeof delimiter_cases / sizeof delimiter_cases[0]);
}

static const alias_case depth_cases[] = {
    {"team@virt.test", 0, "ann@example.test bob@remote.test", true},
    {"chain1@virt.test", 0, ALIAS_TOO_DEEP_TEXT, true},
    {"both@virt.test", 0, ALIAS_TOO_LARGE_TEXT, true},   /* depth 2, 3 addresses */
};

static const alias_case size_cases[] = {
    {"team@virt.test", 0, "ann@example.test bob@remote.test", true},
    {"spaced@virt.test", 0, ALIAS_TOO_LARGE_TEXT, true},
    {"chain1@virt.test", 0, "end@remote.test", true},
};

static void test_alias_limits(void **state)
{
    (void)state;
    check_cases("virtual_alias_recursion_limit = 2\nvirtual_alias_expansion_limit = 2\n",
                depth_cases, sizeof depth_cases / sizeof depth_cases[0]);
    check_cases("virtual_alias_expansion_limit = 2\n", size_cases,
                sizeof size_cases / sizeof size_cases[0]);
}

/* A table that cannot be opened is an error at open. */
static void test_alias_missing_table(void **state)
{
    (void)state;
    config_t *cfg = load("virtual_alias_maps = hash:missing\n");
    char *err = NULL;
    assert_null(alias_open(cfg, &err));
    assert_non_null(strstr(err, "virtual_alias_maps: "));
    xfree(&err);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alias_basic),
        cmocka_unit_test(test_alias_delimiter),
        cmocka_unit_test(test_alias_limits),
        cmocka_unit_test(test_alias_missing_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
