// mem_native.c -- rprof test workload: plain C, no Python, three functions allocating
// known byte counts.  Build: gcc -O2 -g -pthread -fno-omit-frame-pointer -o mem_native mem_native.c
// Run: ./mem_native  (~0.2 s unprofiled); it prints each function's exact totals.
//
// Every size requested is 8 more than a multiple of 16 (and >= 24), for which glibc's
// usable size (what the shim counts for malloc-family blocks) equals the request: a
// chunk holds the request plus an 8-byte header, rounded up to 16 -- so the totals below
// are exact in both senses.  (The ring's 4 MiB blocks are mmap'd at first, whose usable
// size is the page-rounded chunk less 16 B: 4 KiB more per block, 0.1%, until glibc's
// dynamic mmap threshold moves them to the heap.)
//
//   small_blocks(): 2,000,000 malloc + free, sizes 24..520 B (cycle of 32), each freed
//                   at once: 544,000,000 B allocated, ~0 live.
//   grow_chains():  4,000 chains: malloc(24), then realloc to 2 x size + 8 until the
//                   size reaches 60,000 B (11 reallocs: 24, 56, 120, ..., 65,528), then
//                   free.  Under the rule "realloc counts growth", each chain allocates
//                   its final size: 4,000 x 65,528 = 262,112,000 B.
//   ring_blocks():  120 calloc(1, 4 MiB + 8), a ring of 32 live at a time (each freed
//                   when the ring comes round): 503,317,440 B allocated, peak live
//                   32 blocks = 134,217,984 B, all freed before return.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_N 2000000L
#define CHAINS 4000L
#define CHAIN_LIMIT 60000
#define RING_N 120
#define RING_LIVE 32
#define RING_SIZE ((4u << 20) + 8)

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

__attribute__((noinline)) static unsigned long small_blocks(long n) {
    unsigned long bytes = 0;
    for (long i = 0; i < n; i++) {
        size_t sz = 24 + (size_t)(i & 31) * 16;
        unsigned char *p = malloc(sz);
        escape(p);
        p[0] = (unsigned char)i; p[sz - 1] = 1;
        bytes += sz;
        free(p);
    }
    return bytes;
}

__attribute__((noinline)) static unsigned long grow_chains(long chains, size_t *final) {
    unsigned long bytes = 0;
    for (long c = 0; c < chains; c++) {
        size_t sz = 24;
        unsigned char *p = malloc(sz);
        while (sz < CHAIN_LIMIT) {
            size_t nsz = 2 * sz + 8;
            unsigned char *q = realloc(p, nsz);
            if (!q) abort();
            p = q; p[nsz - 1] = (unsigned char)c;
            sz = nsz;
        }
        escape(p);
        free(p);
        bytes += sz;
        *final = sz;
    }
    return bytes;
}

__attribute__((noinline)) static unsigned long ring_blocks(int n, unsigned long *peak) {
    unsigned char *ring[RING_LIVE] = {0};
    unsigned long bytes = 0, live = 0;
    for (int i = 0; i < n; i++) {
        int slot = i % RING_LIVE;
        if (ring[slot]) { free(ring[slot]); live -= RING_SIZE; }
        ring[slot] = calloc(1, RING_SIZE);
        if (!ring[slot]) abort();
        ring[slot][RING_SIZE - 1] = (unsigned char)i;
        escape(ring[slot]);
        bytes += RING_SIZE; live += RING_SIZE;
        if (live > *peak) *peak = live;
    }
    for (int s = 0; s < RING_LIVE; s++) free(ring[s]);
    return bytes;
}

int main(void) {
    size_t final = 0;
    unsigned long peak = 0;
    unsigned long small = small_blocks(SMALL_N);
    unsigned long grow = grow_chains(CHAINS, &final);
    unsigned long ring = ring_blocks(RING_N, &peak);
    printf("mem_native small_blocks bytes=%lu grow_chains bytes=%lu chains=%ld final=%zu "
           "ring_blocks bytes=%lu peak=%lu\n", small, grow, CHAINS, final, ring, peak);
    return 0;
}
