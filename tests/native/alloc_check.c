/* Allocator coexistence check (tests/test_allocators.py): run with tcmalloc or jemalloc
 * preloaded, before or after librprof.so.  It prints only what must be the same with and
 * without rprof:
 *   - `served: yes` when the preloaded allocator (argv[1]: tcmalloc, jemalloc or glibc)
 *     really served the program's malloc, read from that allocator's own statistics;
 *   - `usable: ok` when malloc_usable_size() is sane for every block (>= the size asked,
 *     and not absurdly more);
 *   - `small_usable: N`, the usable size of a SMALL_SIZE-byte block (the allocator's size
 *     class: the memory truth of many_small() is SMALL_N blocks of that many bytes);
 *   - a checksum of work done by 4 threads allocating mixed sizes, with realloc chains,
 *     aligned blocks and cross-thread frees.
 * Memory ground truth for the profile: big_block() allocates BIG_MB MiB in one block and
 * keeps it to the end; many_small() allocates SMALL_N blocks of SMALL_SIZE bytes, all
 * live at once, then frees them. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_MB 48
#define SMALL_N 200000
#define SMALL_SIZE 200
#define THREADS 4
#define ROUNDS 20000

static const char *allocator;

/* Bytes the preloaded allocator says it has handed out, or -1 when it cannot say. */
static long long allocated_bytes(void) {
    if (strcmp(allocator, "jemalloc") == 0) {
        int (*mallctl)(const char *, void *, size_t *, void *, size_t) = dlsym(RTLD_DEFAULT, "mallctl");
        uint64_t v = 0;
        size_t n = sizeof v;
        if (!mallctl || mallctl("thread.allocated", &v, &n, NULL, 0) != 0) return -1;
        return (long long)v;
    }
    if (strcmp(allocator, "tcmalloc") == 0) {
        int (*prop)(const char *, size_t *) = dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty");
        size_t v = 0;
        if (!prop || !prop("generic.current_allocated_bytes", &v)) return -1;
        return (long long)v;
    }
    return -1;
}

static int usable_ok = 1;

static void check_usable(void *p, size_t asked) {
    size_t u = malloc_usable_size(p);
    if (u < asked || u > asked * 2 + 4096) {
        if (usable_ok) fprintf(stderr, "malloc_usable_size(%zu-byte block) = %zu\n", asked, u);
        usable_ok = 0;
    }
}

static void *big;

__attribute__((noinline)) static void big_block(void) {
    big = malloc((size_t)BIG_MB << 20);
    check_usable(big, (size_t)BIG_MB << 20);
    memset(big, 1, (size_t)BIG_MB << 20);
}

__attribute__((noinline)) static unsigned long many_small(void) {
    static void *blocks[SMALL_N];
    unsigned long sum = 0;
    for (int i = 0; i < SMALL_N; i++) {
        blocks[i] = malloc(SMALL_SIZE);
        memset(blocks[i], i & 0xff, SMALL_SIZE);
    }
    for (int i = 0; i < SMALL_N; i++) {
        sum += ((unsigned char *)blocks[i])[i % SMALL_SIZE];
        free(blocks[i]);
    }
    return sum;
}

/* A block handed from each thread to the next, freed by the receiver. */
static void *handoff[THREADS];
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    long id = (long)arg;
    unsigned long sum = 0, x = 88172645463325252ull + id;
    char *chain = NULL;
    size_t chain_len = 0;
    for (int r = 0; r < ROUNDS; r++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = 1 + x % 5000;
        unsigned char *p;
        switch (r % 4) {
        case 0: p = malloc(n); break;
        case 1: p = calloc(1, n); break;
        case 2: if (posix_memalign((void **)&p, 64, n)) p = NULL; break;
        default: p = aligned_alloc(256, (n + 255) & ~(size_t)255); break;
        }
        if (!p) { fprintf(stderr, "allocation failed\n"); exit(2); }
        check_usable(p, n);
        memset(p, (int)(x & 0xff), n);
        sum += p[n / 2];
        size_t grown = chain_len;
        chain_len += 1 + x % 64;
        chain = realloc(chain, chain_len);
        memset(chain + grown, r & 0xff, chain_len - grown);
        sum += (unsigned char)chain[chain_len / 2];
        if (chain_len > 100000) {
            free(chain);
            chain = NULL;
            chain_len = 0;
        }
        pthread_mutex_lock(&handoff_lock);
        void *theirs = handoff[(id + 1) % THREADS];
        handoff[(id + 1) % THREADS] = NULL;
        if (!handoff[id]) handoff[id] = p, p = NULL;
        pthread_mutex_unlock(&handoff_lock);
        free(theirs);
        free(p);
    }
    free(chain);
    return (void *)sum;
}

int main(int argc, char **argv) {
    allocator = argc > 1 ? argv[1] : "glibc";
    long long before = allocated_bytes();
    big_block();
    long long after = allocated_bytes();
    if (before >= 0)
        printf("served: %s\n", after - before >= ((long long)BIG_MB << 20) ? "yes" : "no");
    void *probe = malloc(SMALL_SIZE);
    printf("small_usable: %zu\n", malloc_usable_size(probe));
    free(probe);
    unsigned long sum = many_small();
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) {
        void *s;
        pthread_join(t[i], &s);
        sum += (unsigned long)s;
    }
    for (int i = 0; i < THREADS; i++) free(handoff[i]);
    printf("usable: %s\n", usable_ok ? "ok" : "BAD");
    printf("checksum: %lu\n", sum + ((unsigned char *)big)[12345]);
    return 0;
}
