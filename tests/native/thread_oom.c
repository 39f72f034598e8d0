// thread_oom.c -- pthread_create when malloc fails, for tests/test_reliability.py.
// Build: gcc -O2 -g -pthread -o thread_oom thread_oom.c
//
// Caps its own address space (RLIMIT_AS) a little above what it maps now, fills the
// heap until even malloc(1) fails, then creates a thread: that must fail with EAGAIN
// (the new stack cannot be mapped; under a profiler, its own small allocation fails
// first), not abort the program. Then it frees everything, lifts the cap, and a thread
// starts normally. Prints "oom: EAGAIN" and "after: 0 ran".
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct block { struct block *next; } block;

static void *run(void *arg) { *(int *)arg = 1; return NULL; }

static long mapped_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    if (!f || fscanf(f, "%ld", &pages) != 1) exit(5);
    fclose(f);
    return pages * sysconf(_SC_PAGESIZE);
}

int main(void) {
    struct rlimit old, cap;
    getrlimit(RLIMIT_AS, &old);
    cap = old;
    cap.rlim_cur = (rlim_t)mapped_bytes() + (32 << 20);
    if (setrlimit(RLIMIT_AS, &cap)) { perror("setrlimit"); return 5; }
    block *held = NULL;
    for (size_t size = 1 << 20; size >= sizeof(block); size /= 2) {
        block *b;
        while ((b = malloc(size))) { b->next = held; held = b; }
    }
    pthread_t t;
    int ran = 0;
    int rc = pthread_create(&t, NULL, run, &ran);
    if (rc == 0) pthread_join(t, NULL);
    while (held) { block *b = held->next; free(held); held = b; }
    setrlimit(RLIMIT_AS, &old);
    printf("oom: %s\n", rc == EAGAIN ? "EAGAIN" : rc == 0 ? "0" : strerror(rc));
    rc = pthread_create(&t, NULL, run, &ran);
    if (rc == 0) pthread_join(t, NULL);
    printf("after: %d %s\n", rc, ran ? "ran" : "did not run");
    return 0;
}
