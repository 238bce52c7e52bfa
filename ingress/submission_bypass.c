/* submission_bypass.c - the submission bypass list (see
 * submission_bypass.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "buf.h"
#include "cidr.h"
#include "fsutil.h"
#include "submission_bypass.h"
#include "xalloc.h"

struct bypass {
    cidr_list_t *nets;
    char       **senders;           /* "user@domain" or "@domain", matched in any case */
    size_t       n_senders;
    bool         local;
};

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

bypass_t *bypass_open(const char *path, char **err)
{
    bypass_t *b = xcalloc(1, sizeof(*b));
    char *text, *line, *next;
    char **nets = NULL;
    size_t n_nets = 0, len;
    unsigned lineno = 0;

    if ((text = fs_read_file(path, &len)) == NULL) {
        *err = xasprintf("%s: cannot read: %s", path, strerror(errno));
        xfree(&b);
        return NULL;
    }
    for (line = text; line; line = next) {
        char *item_save = NULL;

        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        lineno++;
        if (trim(line)[0] == '#')
            continue;
        for (char *item = strtok_r(line, ";", &item_save); item;
             item = strtok_r(NULL, ";", &item_save)) {
            item = trim(item);
            if (!*item)
                continue;
            if (strncasecmp(item, "i:", 2) == 0 && item[2]) {
                nets = xrealloc(nets, (n_nets + 2) * sizeof(*nets));
                nets[n_nets++] = xstrdup(trim(item + 2));
                nets[n_nets] = NULL;
            } else if (strncasecmp(item, "s:", 2) == 0 && item[2]) {
                char *s = trim(item + 2);
                b->senders = xrealloc(b->senders, (b->n_senders + 1) * sizeof(char *));
                b->senders[b->n_senders++] = strchr(s, '@') ? xstrdup(s)
                                                            : xasprintf("@%s", s);
            } else if (strcasecmp(item, "l:") == 0) {
                b->local = true;
            } else {
                *err = xasprintf("%s:%u: \"%s\" is not i:NETWORK, s:SENDER or l:", path,
                                 lineno, item);
                goto fail;
            }
        }
    }
    if (n_nets) {
        char *why = NULL;
        if ((b->nets = cidr_list_parse((const char *const *)nets, &why)) == NULL) {
            *err = xasprintf("%s: %s", path, why ? why : "bad network");
            free(why);
            goto fail;
        }
    }
    for (size_t i = 0; i < n_nets; i++)
        xfree(&nets[i]);
    xfree(&nets);
    xfree(&text);
    return b;
fail:
    for (size_t i = 0; i < n_nets; i++)
        xfree(&nets[i]);
    xfree(&nets);
    xfree(&text);
    bypass_free(&b);
    return NULL;
}

void bypass_free(bypass_t **bp)
{
    bypass_t *b = *bp;

    if (!b)
        return;
    cidr_list_free(&b->nets);
    for (size_t i = 0; i < b->n_senders; i++)
        xfree(&b->senders[i]);
    xfree(&b->senders);
    xfree(bp);
}

bool bypass_match(const bypass_t *b, ingress_t *ig, const struct sockaddr *client,
                  const char *sender)
{
    const char *domain = address_domain(sender);

    if (!b)
        return false;
    if (b->nets && cidr_list_match(b->nets, client))
        return true;
    for (size_t i = 0; sender[0] && i < b->n_senders; i++) {
        const char *e = b->senders[i];
        if (e[0] == '@' ? strcasecmp(e + 1, domain) == 0 : strcasecmp(e, sender) == 0)
            return true;
    }
    return b->local && ingress_local_user(ig, sender);
}
