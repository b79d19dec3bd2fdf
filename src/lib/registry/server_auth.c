/* Basic authentication against an htpasswd file: bcrypt ("$2y$", what `htpasswd -B` writes,
 * also "$2a$"/"$2b$") through libxcrypt's crypt_r, loaded with dlopen like the other optional
 * libraries, and "{SHA}" (base64 of SHA-1) through libcrypto. Clients send the password with
 * every request and bcrypt is slow on purpose, so a verified pair is remembered by the
 * SHA-256 of "user:password". */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "../base/cleanup.h"
#include "../base/dl.h"
#include "../base/fs.h"
#include "server_internal.h"

#define HTPASSWD_MAX  ((size_t)1 << 20)
#define CRED_MAX      1024 /* the longest "user:password" taken from a header */
#define CACHE_ENTRIES 64

struct htpasswd_entry {
    char *user;
    char *hash;
};

struct ks_htpasswd {
    struct htpasswd_entry *entries;
    size_t n;
    pthread_mutex_t lock;
    unsigned char cache[CACHE_ENTRIES][SHA256_DIGEST_LENGTH];
    size_t cache_next, cache_used;
};

static char *(*crypt_r_fn)(const char *, const char *, struct crypt_data *);
static pthread_once_t crypt_once = PTHREAD_ONCE_INIT;
static struct ks_error *crypt_error;

static void crypt_load(void)
{
    static const char *const sonames[] = {"libcrypt.so.1", NULL};
    const struct ks_dl_sym syms[] = {{"crypt_r", (void **)&crypt_r_fn}};
    ks_dl_load(sonames, "libcrypt1", syms, 1, &crypt_error);
}

void ks_htpasswd_free(struct ks_htpasswd *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->entries[i].user);
        free(h->entries[i].hash);
    }
    free(h->entries);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

KS_DEFINE_CLEANUP(struct ks_htpasswd *, ks_htpasswd_free)

int ks_htpasswd_load(const char *path, struct ks_htpasswd **ret, struct ks_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "htpasswd `%s`", path);
    _cleanup_free_ char *buf = NULL;
    int r = ks_read_fd(fd, HTPASSWD_MAX, &buf, NULL, err);
    if (r < 0)
        return ks_error_wrap(err, "htpasswd `%s`", path);
    _cleanup_(ks_htpasswd_free_p) struct ks_htpasswd *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return ks_error_set(err, ENOMEM, "htpasswd");
    pthread_mutex_init(&h->lock, NULL);
    bool bcrypt = false;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (line[0] == '#' || colon == NULL || colon == line)
            continue;
        *colon = '\0';
        const char *hash = colon + 1;
        if (strncmp(hash, "$2", 2) != 0 && strncmp(hash, "{SHA}", 5) != 0)
            return ks_error_set_plain(err, ENOTSUP,
                                      "htpasswd `%s`: user `%s`: only bcrypt (htpasswd -B) and "
                                      "{SHA} passwords are supported",
                                      path, line);
        bcrypt |= hash[0] == '$';
        struct htpasswd_entry *e = realloc(h->entries, (h->n + 1) * sizeof(*e));
        if (e == NULL)
            return ks_error_set(err, ENOMEM, "htpasswd");
        h->entries = e;
        e[h->n].user = strdup(line);
        e[h->n].hash = strdup(hash);
        if (e[h->n].user == NULL || e[h->n].hash == NULL) {
            free(e[h->n].user);
            free(e[h->n].hash);
            return ks_error_set(err, ENOMEM, "htpasswd");
        }
        h->n++;
    }
    if (bcrypt) {
        pthread_once(&crypt_once, crypt_load);
        if (crypt_error)
            return ks_error_set_plain(err, crypt_error->errnum, "%s", crypt_error->msg);
    }
    *ret = TAKE_PTR(h);
    return 0;
}

static bool verify(const char *hash, const char *password)
{
    if (strncmp(hash, "{SHA}", 5) == 0) {
        unsigned char md[SHA_DIGEST_LENGTH];
        char b64[64];
        SHA1((const unsigned char *)password, strlen(password), md);
        int n = EVP_EncodeBlock((unsigned char *)b64, md, sizeof(md));
        size_t want = strlen(hash + 5);
        return n > 0 && (size_t)n == want && CRYPTO_memcmp(b64, hash + 5, want) == 0;
    }
    _cleanup_free_ struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL || crypt_r_fn == NULL)
        return false;
    const char *out = crypt_r_fn(password, hash, cd);
    size_t n = strlen(hash);
    return out && out[0] != '*' && strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;
}

bool ks_htpasswd_check(struct ks_htpasswd *h, const char *authorization)
{
    if (authorization == NULL || strncasecmp(authorization, "Basic ", 6) != 0)
        return false;
    const char *b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    size_t len = strlen(b64);
    if (len == 0 || len > CRED_MAX || len % 4)
        return false;
    unsigned char cred[CRED_MAX + 4];
    int n = EVP_DecodeBlock(cred, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return false;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    for (size_t i = len; i > 0 && b64[i - 1] == '='; i--)
        n--;
    cred[n] = '\0';
    if (memchr(cred, '\0', (size_t)n))
        return false;
    char *colon = strchr((char *)cred, ':');
    if (colon == NULL)
        return false;

    unsigned char key[SHA256_DIGEST_LENGTH];
    SHA256(cred, (size_t)n, key);
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->cache_used; i++)
        if (CRYPTO_memcmp(h->cache[i], key, sizeof(key)) == 0) {
            pthread_mutex_unlock(&h->lock);
            return true;
        }
    pthread_mutex_unlock(&h->lock);

    *colon = '\0';
    const char *user = (const char *)cred, *password = colon + 1;
    bool ok = false;
    for (size_t i = 0; i < h->n && !ok; i++)
        if (strcmp(h->entries[i].user, user) == 0)
            ok = verify(h->entries[i].hash, password);
    OPENSSL_cleanse(cred, sizeof(cred));
    if (ok) {
        pthread_mutex_lock(&h->lock);
        memcpy(h->cache[h->cache_next], key, sizeof(key));
        h->cache_next = (h->cache_next + 1) % CACHE_ENTRIES;
        if (h->cache_used < CACHE_ENTRIES)
            h->cache_used++;
        pthread_mutex_unlock(&h->lock);
    }
    return ok;
}
