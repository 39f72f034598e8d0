// large_kept.c -- rprof test workload: 100 blocks of 1,000,000 bytes kept to the exit by
// `keep`, between bursts of small malloc/free pairs in `churn` fast enough (GB/s) that,
// at the default sampling rate, the thread's sampling mean grows from 128 KiB (rprof's
// adaptive rate). A block is far larger than 128 KiB but not than the grown mean: it
// must still count as itself. Prints the truth: "kept_bytes N", the usable bytes of the
// kept blocks (the shim counts usable sizes).
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define BLOCKS 100
static void *kept[BLOCKS];
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

__attribute__((noinline)) static void churn(long pairs) {
    for (long i = 0; i < pairs; i++) {
        void *p = malloc(64 + (size_t)(i & 7) * 32);
        escape(p);
        free(p);
    }
}

__attribute__((noinline)) static size_t keep(int i) {
    kept[i] = malloc(1000000);
    escape(kept[i]);
    return malloc_usable_size(kept[i]);
}

int main(void) {
    size_t bytes = 0;
    for (int i = 0; i < BLOCKS; i++) {
        churn(100000);
        bytes += keep(i);
    }
    printf("kept_bytes %zu\n", bytes);
    return 0;
}
