// alloc_api.c -- rprof test workload: plain C, no Python.
// Calls every allocator entry point a preloaded shim has to forward (malloc, calloc,
// realloc, reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc, strdup,
// malloc_usable_size) from N threads, and frees blocks on a thread other than the one
// that allocated them.  The output depends only on the total work, not on the thread
// count or the timing; `failures` counts broken contracts (alignment, zeroed calloc
// memory, contents kept by realloc, usable size) and must be 0.
// Build: gcc -O2 -g -pthread -fno-omit-frame-pointer -o alloc_api alloc_api.c
// Run:   ./alloc_api [threads=1] [divisor=1]      (~1 s single-threaded at divisor 1)
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALLS 8000000L   // single-owner allocations, split across the threads
#define ROUNDS 400L      // cross-thread rounds: allocate blocks, barrier, free a peer's
#define BATCH 1000       // blocks per round, split across the threads

static int nthreads;
static long calls, rounds;
static pthread_barrier_t barrier;
static void *handoff[64][BATCH];
static int batch[64];

struct result { unsigned long bytes; long failures; };

static int misaligned(void *p, size_t a) { return ((uintptr_t)p & (a - 1)) != 0; }

// One allocation through the entry point picked by i; returns the failed-check count.
static long one_call(long i, unsigned long *bytes) {
    size_t sz = 16 + (size_t)(i * 2654435761u % 4096);
    long bad = 0;
    char *p = NULL;
    switch (i % 8) {
    case 0: p = malloc(sz); break;
    case 1: p = calloc(1, sz); bad += p[0] != 0 || p[sz - 1] != 0; break;
    case 2:
        p = malloc(16); memset(p, 7, 16);
        p = realloc(p, sz + 16); bad += p[15] != 7;
        p = realloc(p, 16); bad += p[0] != 7; sz = 16;
        break;
    case 3: bad += posix_memalign((void **)&p, 64, sz) != 0 || misaligned(p, 64); break;
    case 4: sz = (sz + 255) & ~(size_t)255; p = aligned_alloc(256, sz); bad += misaligned(p, 256); break;
    case 5: p = memalign(4096, sz); bad += misaligned(p, 4096); break;
    case 6: p = reallocarray(NULL, sz / 8, 8); sz = sz / 8 * 8; break;
    case 7: p = valloc(sz); bad += misaligned(p, 4096); break;
    }
    if (!p) return bad + 1;
    bad += malloc_usable_size(p) < sz;
    memset(p, 1, sz);
    *bytes += sz;
    free(p);
    return bad;
}

static void *run(void *arg) {
    long t = (long)arg;
    struct result *r = calloc(1, sizeof *r);
    for (long i = t; i < calls; i += nthreads) r->failures += one_call(i, &r->bytes);
    char name[32];
    for (long k = 0; k < rounds; k++) {
        snprintf(name, sizeof name, "block-%ld", k);
        for (int b = 0; b < batch[t]; b++) handoff[t][b] = strdup(name);
        pthread_barrier_wait(&barrier);
        int peer = (t + 1) % nthreads;                    // free what the next thread made
        for (int b = 0; b < batch[peer]; b++) {
            r->failures += strcmp(handoff[peer][b], name) != 0;
            r->bytes += strlen(name) + 1;
            free(handoff[peer][b]);
        }
        pthread_barrier_wait(&barrier);
    }
    return r;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 1;
    long div = argc > 2 ? atol(argv[2]) : 1;
    if (nthreads < 1 || nthreads > 64) nthreads = 1;
    if (div < 1) div = 1;
    calls = CALLS / div; rounds = ROUNDS / div;
    pthread_barrier_init(&barrier, NULL, nthreads);
    for (int t = 0; t < nthreads; t++) batch[t] = BATCH / nthreads + (t < BATCH % nthreads);
    pthread_t th[64];
    for (long t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, run, (void *)t);
    unsigned long bytes = 0; long failures = 0;
    for (int t = 0; t < nthreads; t++) {
        struct result *r;
        pthread_join(th[t], (void **)&r);
        bytes += r->bytes; failures += r->failures;
        free(r);
    }
    printf("alloc_api calls=%ld rounds=%ld bytes=%lu failures=%ld\n", calls, rounds, bytes, failures);
    return failures != 0;
}
