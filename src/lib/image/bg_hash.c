/* The ring: slot i % RING holds the i-th buffer. The filler may reuse a slot once the thread has
 * hashed it; with RING slots the buffer handed out last and the one before it stay untouched,
 * which is what a libarchive read callback needs (its caller may still read the previous block
 * while asking for the next). */
#include "bg_hash.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define RING 4

struct ks_bg_hash {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    EVP_MD_CTX *md;
    size_t buf_size;
    unsigned char *bufs[RING];
    size_t len[RING];
    uint64_t handed;    /* buffers given out by next */
    uint64_t submitted; /* buffers given to the thread */
    uint64_t hashed;    /* buffers the thread is done with */
    bool stop;          /* hash what is submitted, then end */
    bool abandon;       /* end now */
    bool failed;
};

static void *hash_thread(void *data)
{
    struct ks_bg_hash *h = data;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->hashed == h->submitted && !h->stop && !h->abandon)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->hashed == h->submitted || h->abandon)
            break;
        size_t slot = h->hashed % RING;
        pthread_mutex_unlock(&h->mu);
        bool ok = EVP_DigestUpdate(h->md, h->bufs[slot], h->len[slot]) == 1;
        pthread_mutex_lock(&h->mu);
        h->failed |= !ok;
        h->hashed++;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

void ks_bg_hash_free(struct ks_bg_hash *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        pthread_mutex_lock(&h->mu);
        h->abandon = true;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    EVP_MD_CTX_free(h->md);
    for (size_t i = 0; i < RING; i++)
        free(h->bufs[i]);
    free(h);
}

int ks_bg_hash_new(size_t buf_size, struct ks_bg_hash **ret)
{
    struct ks_bg_hash *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->buf_size = buf_size;
    h->md = EVP_MD_CTX_new();
    bool ok = h->md && EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < RING; i++)
        ok = (h->bufs[i] = malloc(buf_size)) != NULL;
    if (!ok) {
        ks_bg_hash_free(h);
        return -ENOMEM;
    }
    int r = pthread_create(&h->thread, NULL, hash_thread, h);
    if (r != 0) {
        ks_bg_hash_free(h);
        return -r;
    }
    h->started = true;
    *ret = h;
    return 0;
}

void *ks_bg_hash_next(struct ks_bg_hash *h)
{
    pthread_mutex_lock(&h->mu);
    /* A buffer handed out but never submitted is simply handed out again. */
    if (h->handed > h->submitted)
        h->handed = h->submitted;
    uint64_t i = h->handed;
    /* Its slot is free once buffer i - RING, the last to use it, is hashed. */
    while (i >= RING && h->hashed < i - RING + 1)
        pthread_cond_wait(&h->cv, &h->mu);
    void *buf = h->bufs[i % RING];
    h->handed++;
    pthread_mutex_unlock(&h->mu);
    return buf;
}

void ks_bg_hash_submit(struct ks_bg_hash *h, size_t len)
{
    pthread_mutex_lock(&h->mu);
    if (h->handed == h->submitted + 1) {
        h->len[h->submitted % RING] = len;
        h->submitted++;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

int ks_bg_hash_final(struct ks_bg_hash *h, char out[static KS_SHA256_DIGEST_LEN])
{
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    h->started = false;
    if (h->failed)
        return -ENOMEM;
    return ks_sha256_final(h->md, out);
}
