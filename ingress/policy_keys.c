/* policy_keys.c - keys for the policy service (see policy_keys.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "policy_keys.h"

/* mask - keep the first bits of the address bytes a (len bytes). */
static void mask(unsigned char *a, size_t len, int bits)
{
    for (size_t i = 0; i < len; i++) {
        int keep = bits - (int)i * 8;

        if (keep >= 8)
            continue;
        a[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
}

void policy_key_network(const char *ip, int prefix4, int prefix6, char *out, size_t size)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET, ip, a) == 1) {
        mask(a, 4, prefix4);
        inet_ntop(AF_INET, a, text, sizeof(text));
        snprintf(out, size, "%s/%d", text, prefix4);
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        mask(a, 16, prefix6);
        inet_ntop(AF_INET6, a, text, sizeof(text));
        snprintf(out, size, "%s/%d", text, prefix6);
    } else {
        snprintf(out, size, "%s", ip);
    }
}

void policy_key_ip(const char *ip, char *out, size_t size)
{
    if (strchr(ip, ':'))
        policy_key_network(ip, 32, 64, out, size);
    else
        snprintf(out, size, "%s", ip);
}

void policy_key_sender(const char *sender, char *out, size_t size)
{
    const char *at, *local = sender, *p;
    size_t o = 0;
    bool in_digits = false;

    if (size == 0)
        return;
    if (sender[0] == '\0') {
        snprintf(out, size, "<>");
        return;
    }
    at = strrchr(sender, '@');
    if (at == NULL)
        at = sender + strlen(sender);
    /* BATV (draft-levine-smtp-batv): prvs=TAG=user@domain */
    if (strncasecmp(local, "prvs=", 5) == 0) {
        const char *eq = memchr(local + 5, '=', (size_t)(at - local - 5));
        if (eq && eq + 1 < at)
            local = eq + 1;
    }
    for (p = local; p < at && o + 1 < size; p++) {
        unsigned char ch = (unsigned char)*p;

        if (ch == '+')                  /* user+extension: the rest of the local part goes */
            break;
        if (isdigit(ch)) {
            if (!in_digits)
                out[o++] = '#';
            in_digits = true;
            continue;
        }
        in_digits = false;
        out[o++] = (char)tolower(ch);
    }
    for (p = at; *p && o + 1 < size; p++)
        out[o++] = (char)tolower((unsigned char)*p);
    out[o] = '\0';
}

void policy_key_triplet(const char *network, const char *sender, const char *rcpt, char *out,
                        size_t size)
{
    char s[600];
    int n;

    policy_key_sender(sender, s, sizeof(s));
    n = network ? snprintf(out, size, "%s/%s/", network, s) : snprintf(out, size, "%s/", s);
    if (n < 0 || (size_t)n >= size)
        return;
    for (size_t i = (size_t)n, k = 0; i + 1 < size && rcpt[k]; i++, k++) {
        out[i] = (char)tolower((unsigned char)rcpt[k]);
        out[i + 1] = '\0';
    }
}

bool policy_limits_parse(const char *value, policy_limits *l, const char **bad)
{
    static const struct { const char *name; size_t off; } words[] = {
        { "messages", offsetof(policy_limits, messages) },
        { "recipients", offsetof(policy_limits, recipients) },
        { "domain_messages", offsetof(policy_limits, domain_messages) },
    };
    const char *p = value;

    l->messages = l->recipients = l->domain_messages = -1;
    for (;;) {
        const char *word, *eq;
        size_t len;
        bool known = false;

        p += strspn(p, " \t,");
        if (*p == '\0')
            return true;
        word = p;
        len = strcspn(p, " \t,");
        eq = memchr(word, '=', len);
        for (size_t i = 0; eq && i < sizeof(words) / sizeof(words[0]); i++) {
            char *end;
            long v;

            if (strlen(words[i].name) != (size_t)(eq - word)
                || strncmp(words[i].name, word, (size_t)(eq - word)) != 0)
                continue;
            errno = 0;
            v = strtol(eq + 1, &end, 10);
            if (end == eq + 1 || end != word + len || v < 0 || errno)
                break;
            *(long *)((char *)l + words[i].off) = v;
            known = true;
        }
        if (!known) {
            *bad = word;
            return false;
        }
        p = word + len;
    }
}
