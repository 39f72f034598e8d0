// exact_allocs.c -- allocations whose count and bytes the test knows exactly.
// Usage:
//   exact_allocs small N SIZE     N x malloc(SIZE) on the main thread, kept to exit
//   exact_allocs threads T N SIZE the same in each of T threads (joined before exit)
//   exact_allocs big MIB          one malloc of MIB MiB (the program's only allocation)
//   exact_allocs blocks K MIB     K mallocs of MIB MiB each
// Prints "usable U" (malloc_usable_size of one block) and "total T" (the sum of every
// block's malloc_usable_size: glibc may hand out a chunk up to 16 bytes larger than the
// request's size class when splitting it would leave less than its minimum chunk, so the
// blocks of one size need not all be alike) with write(2): stdio would allocate its buffer
// and spoil the count.
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long n;
static size_t size;
static size_t usable;
static size_t total; // every block's usable size, summed (atomically: threads add theirs)
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void say(const char *what, size_t v) {
    char buf[64];
    int len = snprintf(buf, sizeof buf, "%s %zu\n", what, v);
    if (write(1, buf, (size_t)len) != len) _exit(2);
}

static void *many_small(void *arg) {
    (void)arg;
    for (long i = 0; i < n; i++) {
        void *p = malloc(size);
        escape(p);
        size_t u = malloc_usable_size(p);
        if (i == 0) usable = u;
        __atomic_fetch_add(&total, u, __ATOMIC_RELAXED);
    }
    return NULL;
}

__attribute__((noipa)) static void *one_big(size_t bytes) {
    void *p = malloc(bytes); // LINE BIG
    escape(p);
    return p;
}

__attribute__((noipa)) static void *blocks(size_t bytes) {
    void *p = malloc(bytes); // LINE BLOCKS
    escape(p);
    return p;
}

int main(int argc, char **argv) {
    if (argc < 3) return 1;
    if (!strcmp(argv[1], "small") && argc == 4) {
        n = atol(argv[2]);
        size = (size_t)atol(argv[3]);
        many_small(NULL);
    } else if (!strcmp(argv[1], "threads") && argc == 5) {
        int t = atoi(argv[2]);
        n = atol(argv[3]);
        size = (size_t)atol(argv[4]);
        pthread_t th[64];
        if (t < 1 || t > 64) return 1;
        for (int i = 0; i < t; i++) pthread_create(&th[i], NULL, many_small, NULL);
        for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    } else if (!strcmp(argv[1], "big")) {
        void *p = one_big((size_t)atol(argv[2]) << 20);
        usable = total = malloc_usable_size(p);
        free(p);
    } else if (!strcmp(argv[1], "blocks") && argc == 4) {
        int k = atoi(argv[2]);
        void *keep[64];
        if (k < 1 || k > 64) return 1;
        for (int i = 0; i < k; i++) keep[i] = blocks((size_t)atol(argv[3]) << 20);
        usable = malloc_usable_size(keep[0]);
        for (int i = 0; i < k; i++) total += malloc_usable_size(keep[i]);
        for (int i = 0; i < k; i++) free(keep[i]);
    } else {
        return 1;
    }
    say("usable", usable);
    say("total", total);
    return 0;
}
