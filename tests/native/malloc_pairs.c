// malloc_pairs.c -- microbenchmark: cost of one malloc+free pair, per thread.
// Usage: malloc_pairs THREADS PAIRS_PER_THREAD   prints "ns_per_pair X" (wall ns per pair per thread)
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long pairs;
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *run(void *arg) {
    (void)arg;
    for (long i = 0; i < pairs; i++) {
        void *p = malloc(16 + (size_t)(i & 7) * 16);
        escape(p);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    pairs = argc > 2 ? atol(argv[2]) : 50000000L;
    if (nt < 1 || nt > 64) nt = 1;
    pthread_t th[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int t = 0; t < nt; t++) pthread_create(&th[t], NULL, run, NULL);
    for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("threads %d pairs %ld ns_per_pair %.2f\n", nt, pairs, ns / pairs);
    return 0;
}
