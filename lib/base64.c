/* base64.c - base64 with OpenSSL's block coder (see base64.h).  OpenSSL's
 * EVP_DecodeBlock accepts surrounding white space and counts padding as
 * data, so the input is checked here first and the padding subtracted. */
#include <openssl/evp.h>
#include <string.h>

#include "base64.h"

void base64_encode(buf_t *out, const void *p, size_t n)
{
    size_t need = 4 * ((n + 2) / 3);

    buf_reserve(out, need + 1);
    EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
    out->len += need;
    out->data[out->len] = '\0';
}

int base64_decode(buf_t *out, const char *s, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t pad = 0;
    int len;

    buf_reset(out);
    if (n % 4 != 0 || n > (1u << 30))
        return -1;
    if (n >= 1 && s[n - 1] == '=')
        pad++;
    if (n >= 2 && s[n - 2] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (s[i] == '\0' || !strchr(alphabet, s[i]))
            return -1;
    buf_reserve(out, n / 4 * 3 + 1);
    if (n == 0) {
        out->data[0] = '\0';
        return 0;
    }
    len = EVP_DecodeBlock((unsigned char *)out->data, (const unsigned char *)s, (int)n);
    if (len < 0 || (size_t)len < pad)
        return -1;
    out->len = (size_t)len - pad;
    out->data[out->len] = '\0';
    return 0;
}
