/* cidr.c - network lists such as mynetworks.
 *
 * Entries are kept as 16-byte addresses with a prefix length; IPv4
 * entries are stored IPv4-mapped (::ffff:a.b.c.d, prefix + 96), so an
 * IPv4 client and an IPv4-mapped IPv6 client match the same entries.
 * Accepted forms: 192.0.2.0/24, 192.0.2.1, 2001:db8::/32, ::1,
 * [::1]/128 and [2001:db8::] (Postfix's bracket form).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "xalloc.h"

typedef struct cidr_entry {
    unsigned char addr[16];
    unsigned      prefix;     /* 0..128, in the mapped space */
} cidr_entry;

struct cidr_list {
    size_t      count;
    cidr_entry *entries;
};

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* to16 - textual address into the 16-byte form; *v4 tells which. */
static bool to16(const char *text, unsigned char out[16], bool *v4)
{
    struct in_addr a4;

    if (inet_pton(AF_INET, text, &a4) == 1) {
        memcpy(out, v4_mapped_prefix, 12);
        memcpy(out + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    *v4 = false;
    return inet_pton(AF_INET6, text, out) == 1;
}

static void mask(unsigned char a[16], unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;
        if (bits < 8)
            a[i] &= (unsigned char)(0xff << (8 - bits));
    }
}

/* parse_item - one entry; false when it is not a network. */
static bool parse_item(const char *item, cidr_entry *e)
{
    char text[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(item, '/');
    size_t alen = slash ? (size_t)(slash - item) : strlen(item);
    unsigned long prefix;
    bool v4;
    char *end;

    if (alen >= 2 && item[0] == '[' && item[alen - 1] == ']') {
        item++;
        alen -= 2;
    }
    if (alen == 0 || alen >= sizeof(text))
        return false;
    memcpy(text, item, alen);
    text[alen] = 0;
    if (!to16(text, e->addr, &v4))
        return false;
    if (slash) {
        if (slash[1] < '0' || slash[1] > '9')
            return false;
        prefix = strtoul(slash + 1, &end, 10);
        if (*end != 0 || prefix > (v4 ? 32u : 128u))
            return false;
    } else {
        prefix = v4 ? 32 : 128;
    }
    e->prefix = (unsigned)prefix + (v4 ? 96 : 0);
    mask(e->addr, e->prefix);
    return true;
}

cidr_list_t *cidr_list_parse(const char *const *items, char **err)
{
    cidr_list_t *list = xcalloc(1, sizeof(*list));
    size_t n = 0;

    *err = NULL;
    while (items && items[n])
        n++;
    list->entries = xcalloc(n ? n : 1, sizeof(*list->entries));
    for (size_t i = 0; i < n; i++) {
        if (!parse_item(items[i], &list->entries[i])) {
            *err = xasprintf("'%s' is not a network address (use 192.0.2.0/24, "
                             "2001:db8::/32 or [::1]/128)", items[i]);
            cidr_list_free(&list);
            return NULL;
        }
    }
    list->count = n;
    return list;
}

static bool match16(const cidr_list_t *list, const unsigned char a[16])
{
    for (size_t i = 0; i < list->count; i++) {
        unsigned char m[16];

        memcpy(m, a, 16);
        mask(m, list->entries[i].prefix);
        if (memcmp(m, list->entries[i].addr, 16) == 0)
            return true;
    }
    return false;
}

bool cidr_list_match(const cidr_list_t *list, const struct sockaddr *addr)
{
    unsigned char a[16];

    if (list == NULL || addr == NULL)
        return false;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
        memcpy(a, v4_mapped_prefix, 12);
        memcpy(a + 12, &sin->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
        memcpy(a, &sin6->sin6_addr, 16);
    } else {
        return false;
    }
    return match16(list, a);
}

bool cidr_list_match_text(const cidr_list_t *list, const char *ip)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN + 2];
    size_t len;
    bool v4;

    if (list == NULL || ip == NULL)
        return false;
    len = strlen(ip);
    if (len >= 2 && ip[0] == '[' && ip[len - 1] == ']') {
        if (len - 2 >= sizeof(text))
            return false;
        memcpy(text, ip + 1, len - 2);
        text[len - 2] = 0;
        ip = text;
    }
    if (!to16(ip, a, &v4))
        return false;
    return match16(list, a);
}

void cidr_list_free(cidr_list_t **list)
{
    if (list && *list) {
        free((*list)->entries);
        xfree(list);
    }
}
