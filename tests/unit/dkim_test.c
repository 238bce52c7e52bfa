/* dkim_test.c - classifier/dkim.c: messages signed here with libopendkim's
 * signer and an RSA key made by the test (OpenSSL), verified through
 * dkim_check_* with the key record handed in directly (no DNS): valid
 * signatures in both canonicalisations, a changed body or header, a
 * missing or broken key, a failed lookup, garbage signature fields, two
 * signatures of which one is good, the bound on signatures, and the From:
 * domain and alignment helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <opendkim/dkim.h>

#include "../../classifier/dkim.h"
#include "base64.h"
#include "buf.h"
#include "xalloc.h"

#define KEY_BITS 1024               /* libopendkim's minimum: quick to make */

typedef struct test_key {
    char *pem;                      /* private key, PEM */
    char *record;                   /* "v=DKIM1; k=rsa; p=..." */
} test_key;

static test_key key1, key2;
static DKIM_LIB *signer;

static const char MSG[] =
    "From: Alice <alice@news.example.com>\r\n"
    "To: bob@example.net\r\n"
    "Subject: hello there\r\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "\r\n"
    "this is the body.\r\n";

/* make_key - a fresh RSA key: its PEM and its DNS record. */
static void make_key(test_key *k)
{
    EVP_PKEY *pkey = EVP_RSA_gen(KEY_BITS);
    assert_non_null(pkey);

    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    k->pem = xstrndup(data, (size_t)n);
    BIO_free(bio);

    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY(pkey, &der);
    assert_true(dlen > 0);
    buf_t b64 = BUF_INIT;
    base64_encode(&b64, der, (size_t)dlen);
    k->record = xasprintf("v=DKIM1; k=rsa; p=%s", b64.data);
    buf_free(&b64);
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
}

static int setup(void **state)
{
    (void)state;
    make_key(&key1);
    make_key(&key2);
    signer = dkim_init(NULL, NULL);
    return signer ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    xfree(&key1.pem);
    xfree(&key1.record);
    xfree(&key2.pem);
    xfree(&key2.record);
    dkim_close(signer);
    dkim_check_lib_free();
    return 0;
}

/* sign - msg with a DKIM-Signature field of d=domain s=selector put in
 * front; malloc'd. */
static char *sign(const char *msg, const test_key *k, const char *domain, const char *selector,
                  dkim_canon_t hc, dkim_canon_t bc)
{
    DKIM_STAT st;
    DKIM *d = dkim_sign(signer, (const u_char *)"test", NULL, (dkim_sigkey_t)k->pem,
                        (const u_char *)selector, (const u_char *)domain, hc, bc,
                        DKIM_SIGN_RSASHA256, -1, &st);
    assert_non_null(d);
    assert_int_equal(dkim_chunk(d, (u_char *)(uintptr_t)msg, strlen(msg)), DKIM_STAT_OK);
    assert_int_equal(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
    assert_int_equal(dkim_eom(d, NULL), DKIM_STAT_OK);
    u_char *hdr = NULL;
    size_t len = 0;
    assert_int_equal(dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER) + 2, &hdr, &len),
                     DKIM_STAT_OK);
    char *out = xasprintf("%s: %.*s\r\n%s", DKIM_SIGNHEADER, (int)len, (const char *)hdr, msg);
    dkim_free(d);
    return out;
}

/* verify - run msg through dkim_check with every key answered as given. */
static dkim_check_t *verify(const char *msg, dkim_check_key status, const char *record)
{
    dkim_check_t *c = dkim_check_new("T1", msg, strlen(msg));
    for (size_t i = 0; i < dkim_check_keys(c); i++)
        dkim_check_key_answer(c, i, status, record);
    dkim_check_finish(c);
    if (getenv("DKIM_TEST_VERBOSE"))        /* what each case gave, and why */
        for (size_t i = 0; i < dkim_check_sigs(c); i++)
            fprintf(stderr, "  sig %zu: %s (%s) d=%s s=%s b=%s\n", i,
                    dkim_check_result_name(dkim_check_get(c, i)->result),
                    dkim_check_get(c, i)->reason, dkim_check_get(c, i)->domain,
                    dkim_check_get(c, i)->selector, dkim_check_get(c, i)->b);
    return c;
}

/* replace - a copy of s with the first `from` made `to`. */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    assert_non_null(p);
    return xasprintf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

static void valid_simple(void **state)
{
    (void)state;
    char *m = sign(MSG, &key1, "example.com", "sel", DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE);
    dkim_check_t *c = dkim_check_new("T1", m, strlen(m));

    assert_int_equal(dkim_check_keys(c), 1);
    assert_string_equal(dkim_check_key_name(c, 0), "sel._domainkey.example.com");
    dkim_check_key_answer(c, 0, DKIM_CHECK_KEY_FOUND, key1.record);
    dkim_check_finish(c);
    assert_int_equal(dkim_check_sigs(c), 1);
    const dkim_check_sig *g = dkim_check_get(c, 0);
    assert_int_equal(g->result, DKIM_CHECK_PASS);
    assert_string_equal(g->domain, "example.com");
    assert_string_equal(g->selector, "sel");
    assert_int_equal(strlen(g->b), 8);
    assert_non_null(strstr(m, g->b));
    assert_false(g->no_key);
    dkim_check_free(&c);
    assert_null(c);
    xfree(&m);
}

static void canonicalisation(void **state)
{
    (void)state;
    static const struct {
        dkim_canon_t hc, bc;
        dkim_check_result plain, spaced;   /* as signed; with white space changed */
    } cases[] = {
        {DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_CHECK_PASS, DKIM_CHECK_PASS},
        {DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE, DKIM_CHECK_PASS, DKIM_CHECK_FAIL},
        {DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE, DKIM_CHECK_PASS, DKIM_CHECK_FAIL},
        {DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED, DKIM_CHECK_PASS, DKIM_CHECK_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *m = sign(MSG, &key1, "example.com", "sel", cases[i].hc, cases[i].bc);
        dkim_check_t *c = verify(m, DKIM_CHECK_KEY_FOUND, key1.record);
        assert_int_equal(dkim_check_sigs(c), 1);
        assert_int_equal(dkim_check_get(c, 0)->result, cases[i].plain);
        dkim_check_free(&c);

        /* a relaxed header survives "Subject:  hello   there", a relaxed
         * body trailing blanks; both changed at once */
        char *s1 = replace(m, "Subject: hello there", "Subject:  hello   there");
        char *s2 = replace(s1, "this is the body.\r\n", "this is  the body. \r\n");
        c = verify(s2, DKIM_CHECK_KEY_FOUND, key1.record);
        assert_int_equal(dkim_check_get(c, 0)->result, cases[i].spaced);
        dkim_check_free(&c);
        xfree(&s1);
        xfree(&s2);
        xfree(&m);
    }
}

static void body_changed(void **state)
{
    (void)state;
    char *m = sign(MSG, &key1, "example.com", "sel", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    char *t = replace(m, "the body.", "the bodY.");
    dkim_check_t *c = verify(t, DKIM_CHECK_KEY_FOUND, key1.record);

    assert_int_equal(dkim_check_sigs(c), 1);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_FAIL);
    assert_false(dkim_check_get(c, 0)->no_key);
    dkim_check_free(&c);
    /* a line added at the end */
    char *t2 = xasprintf("%sP.S. buy now\r\n", m);
    c = verify(t2, DKIM_CHECK_KEY_FOUND, key1.record);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_FAIL);
    dkim_check_free(&c);
    xfree(&t2);
    xfree(&t);
    xfree(&m);
}

static void header_changed(void **state)
{
    (void)state;
    char *m = sign(MSG, &key1, "example.com", "sel", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    char *t = replace(m, "Subject: hello there", "Subject: hello there!");
    dkim_check_t *c = verify(t, DKIM_CHECK_KEY_FOUND, key1.record);

    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_FAIL);
    dkim_check_free(&c);
    xfree(&t);
    /* the wrong key: a bad signature */
    c = verify(m, DKIM_CHECK_KEY_FOUND, key2.record);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_FAIL);
    dkim_check_free(&c);
    xfree(&m);
}

static void key_missing_broken_tempfail(void **state)
{
    (void)state;
    char *m = sign(MSG, &key1, "example.com", "sel", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    dkim_check_t *c = verify(m, DKIM_CHECK_KEY_NONE, NULL);

    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_PERMERROR);
    assert_true(dkim_check_get(c, 0)->no_key);
    dkim_check_free(&c);

    c = verify(m, DKIM_CHECK_KEY_TEMPFAIL, NULL);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_TEMPERROR);
    dkim_check_free(&c);

    /* never answered (the scan gave up): a temporary failure too */
    c = dkim_check_new("T1", m, strlen(m));
    dkim_check_finish(c);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_TEMPERROR);
    dkim_check_free(&c);

    static const char *const broken[] = {
        "v=DKIM1; k=rsa; p=AAAAnotakey",        /* undecodable key */
        "v=DKIM1; k=rsa; p=",                   /* revoked */
        "v=DKIM9; p=MIGf",                       /* unknown version */
        "v=DKIM1; k=dsa; p=MIGf",               /* unknown key type */
        "some text that is no key record",
        "",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        c = verify(m, DKIM_CHECK_KEY_FOUND, broken[i]);
        assert_int_equal(dkim_check_sigs(c), 1);
        assert_int_not_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_PASS);
        assert_false(dkim_check_get(c, 0)->no_key);
        dkim_check_free(&c);
    }
    /* a record far longer than any key */
    char *huge = xmalloc(3 * DKIM_CHECK_MAX_KEY);
    memset(huge, 'A', 3 * DKIM_CHECK_MAX_KEY - 1);
    huge[3 * DKIM_CHECK_MAX_KEY - 1] = 0;
    memcpy(huge, "v=DKIM1; p=", 11);
    c = verify(m, DKIM_CHECK_KEY_FOUND, huge);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_PERMERROR);
    dkim_check_free(&c);
    xfree(&huge);
    xfree(&m);
}

static void garbage_signatures(void **state)
{
    (void)state;
    static const char *const fields[] = {
        "DKIM-Signature: garbage\r\n",
        "DKIM-Signature:\r\n",
        "DKIM-Signature: ;;;===;;\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=; s=; h=from; bh=; b=\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=!!!; b=!!!\r\n",
        "DKIM-Signature: v=1; a=rsa-md5; d=example.com; s=sel; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=subject; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=exa\x01mple.com; s=s\xffl; h=from; bh=AA; b=AA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; l=999999; t=99999999999999999999; bh=AA; b=AA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; x=1; t=2; bh=AA; b=AA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from;\r\n bh=AA;\r\n\tb=AA\r\n",
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *m = xasprintf("%s%s", fields[i], MSG);
        dkim_check_t *c = verify(m, DKIM_CHECK_KEY_FOUND, key1.record);
        assert_int_equal(dkim_check_sigs(c), 1);
        const dkim_check_sig *g = dkim_check_get(c, 0);
        assert_int_not_equal(g->result, DKIM_CHECK_PASS);
        assert_int_not_equal(g->result, DKIM_CHECK_TEMPERROR);
        assert_non_null(g->reason);
        assert_non_null(g->domain);
        dkim_check_free(&c);
        xfree(&m);
    }
    /* a very long selector: no key name, a permerror */
    char sel[400];
    memset(sel, 's', sizeof sel - 1);
    sel[sizeof sel - 1] = 0;
    char *m = xasprintf("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=%s; h=from; "
                        "bh=AA; b=AA\r\n%s", sel, MSG);
    dkim_check_t *c = verify(m, DKIM_CHECK_KEY_FOUND, key1.record);
    assert_int_equal(dkim_check_keys(c), 0);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_PERMERROR);
    dkim_check_free(&c);
    xfree(&m);
    /* signed, but no From: at all; and a header with no body */
    m = sign(MSG, &key1, "example.com", "sel", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    char *t = replace(m, "From: Alice <alice@news.example.com>\r\n", "");
    c = verify(t, DKIM_CHECK_KEY_FOUND, key1.record);
    assert_int_equal(dkim_check_sigs(c), 1);
    assert_int_not_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_PASS);
    dkim_check_free(&c);
    xfree(&t);
    t = xstrndup(m, (size_t)(strstr(m, "\r\n\r\n") - m + 2));
    c = verify(t, DKIM_CHECK_KEY_FOUND, key1.record);
    assert_int_equal(dkim_check_get(c, 0)->result, DKIM_CHECK_FAIL);
    dkim_check_free(&c);
    xfree(&t);
    xfree(&m);
}

static void two_signatures(void **state)
{
    (void)state;
    /* s1 signed with key1 (good); s2 signed with key2 but its record holds
     * key1 (bad) */
    char *m1 = sign(MSG, &key1, "example.com", "s1", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    char *m2 = sign(m1, &key2, "other.example", "s2", DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE);
    dkim_check_t *c = dkim_check_new("T1", m2, strlen(m2));

    assert_int_equal(dkim_check_keys(c), 2);
    for (size_t i = 0; i < 2; i++)
        dkim_check_key_answer(c, i, DKIM_CHECK_KEY_FOUND, key1.record);
    dkim_check_finish(c);
    assert_int_equal(dkim_check_sigs(c), 2);
    size_t pass = 0, fail = 0;
    for (size_t i = 0; i < 2; i++) {
        const dkim_check_sig *g = dkim_check_get(c, i);
        if (g->result == DKIM_CHECK_PASS) {
            pass++;
            assert_string_equal(g->selector, "s1");
        } else if (g->result == DKIM_CHECK_FAIL) {
            fail++;
            assert_string_equal(g->domain, "other.example");
        }
    }
    assert_int_equal(pass, 1);
    assert_int_equal(fail, 1);
    dkim_check_free(&c);

    /* the key of one missing, the other's lookup failing: each its own */
    c = dkim_check_new("T1", m2, strlen(m2));
    for (size_t i = 0; i < 2; i++)
        dkim_check_key_answer(c, i, strstr(dkim_check_key_name(c, i), "s1.") == dkim_check_key_name(c, i)
                                        ? DKIM_CHECK_KEY_TEMPFAIL : DKIM_CHECK_KEY_NONE, NULL);
    dkim_check_finish(c);
    for (size_t i = 0; i < 2; i++) {
        const dkim_check_sig *g = dkim_check_get(c, i);
        if (strcmp(g->selector, "s1") == 0)
            assert_int_equal(g->result, DKIM_CHECK_TEMPERROR);
        else
            assert_true(g->result == DKIM_CHECK_PERMERROR && g->no_key);
    }
    dkim_check_free(&c);
    xfree(&m1);
    xfree(&m2);
}

static void bound_and_unsigned(void **state)
{
    (void)state;
    /* unsigned: nothing to ask, nothing to report */
    dkim_check_t *c = verify(MSG, DKIM_CHECK_KEY_FOUND, key1.record);
    assert_int_equal(dkim_check_keys(c), 0);
    assert_int_equal(dkim_check_sigs(c), 0);
    dkim_check_free(&c);
    c = verify("", DKIM_CHECK_KEY_FOUND, NULL);
    assert_int_equal(dkim_check_sigs(c), 0);
    dkim_check_free(&c);
    c = dkim_check_new(NULL, NULL, 0);
    dkim_check_finish(c);
    assert_int_equal(dkim_check_sigs(c), 0);
    dkim_check_free(&c);
    dkim_check_free(&c);            /* NULL is fine */

    /* eight signatures by eight selectors: five looked at */
    char *m = xstrdup(MSG);
    for (int i = 0; i < 8; i++) {
        char sel[16];
        snprintf(sel, sizeof sel, "k%d", i);
        char *n = sign(m, &key1, "example.com", sel, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
        xfree(&m);
        m = n;
    }
    c = verify(m, DKIM_CHECK_KEY_FOUND, key1.record);
    assert_int_equal(dkim_check_keys(c), DKIM_CHECK_MAX_SIGS);
    assert_int_equal(dkim_check_sigs(c), DKIM_CHECK_MAX_SIGS);
    for (size_t i = 0; i < DKIM_CHECK_MAX_SIGS; i++)
        assert_int_equal(dkim_check_get(c, i)->result, DKIM_CHECK_PASS);
    dkim_check_free(&c);
    xfree(&m);
}

static void from_domain_and_alignment(void **state)
{
    (void)state;
    static const struct { const char *from, *want; } from[] = {
        {"Alice <alice@News.Example.COM>", "news.example.com"},
        {"alice@example.com", "example.com"},
        {" \"Smith, Bob\" <bob@example.org> (comment)", "example.org"},
        {"undisclosed-recipients:;", NULL},
        {"no address here", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        char *d = dkim_check_from_domain(from[i].from);
        if (from[i].want)
            assert_string_equal(d, from[i].want);
        else
            assert_null(d);
        xfree(&d);
    }
    assert_null(dkim_check_from_domain(NULL));

    static const struct { const char *d, *from; bool want; } al[] = {
        {"example.com", "example.com", true},
        {"Example.com", "news.example.COM", true},
        {"example.com", "badexample.com", false},
        {"news.example.com", "example.com", false},
        {"com", "example.com", false},
        {"", "example.com", false},
        {"example.com.", "example.com", true},
    };
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++)
        assert_int_equal(dkim_check_aligned(al[i].d, al[i].from), al[i].want);
    assert_false(dkim_check_aligned(NULL, "example.com"));
    assert_string_equal(dkim_check_result_name(DKIM_CHECK_PERMERROR), "permerror");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_simple),
        cmocka_unit_test(canonicalisation),
        cmocka_unit_test(body_changed),
        cmocka_unit_test(header_changed),
        cmocka_unit_test(key_missing_broken_tempfail),
        cmocka_unit_test(garbage_signatures),
        cmocka_unit_test(two_signatures),
        cmocka_unit_test(bound_and_unsigned),
        cmocka_unit_test(from_domain_and_alignment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
