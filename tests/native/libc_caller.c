/* CPU time spent inside the C library, charged to the function that called it: copy()
 * does little but memcpy large buffers, churn() little but malloc and free (glibc's code
 * keeps no frame pointers, and its memcpy is a leaf that leaves rbp alone), spin() does
 * arithmetic. Prints each one's share of the run's CPU time, measured here, as
 * "share NAME PCT". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

enum { BUF = 1 << 20 };
static char src[BUF], dst[BUF];

__attribute__((noinline)) static long copy(int n)
{
    long s = 0;
    for (int i = 0; i < n; i++) {
        /* Sizes the compiler cannot see, so each is a real call into the library. */
        size_t len = BUF - (size_t)(i & 4095);
        memcpy(dst, src + (i & 4095), len);
        s += dst[i & 1023];
    }
    return s;
}

__attribute__((noinline)) static long churn(int n)
{
    long s = 0;
    for (int i = 0; i < n; i++) {
        void *volatile p = malloc(64 + (i & 1023));
        s += (long)p & 1;
        free(p);
    }
    return s;
}

__attribute__((noinline)) static double spin(int n)
{
    volatile double x = 0;
    for (int i = 0; i < n; i++)
        x = x + i * 0.5;
    return x;
}

int main(void)
{
    double in_copy = 0, in_churn = 0, in_spin = 0, sink = 0;
    memset(src, 1, sizeof src);
    /* rprof's writer compiles the C library's unwind table from 100 ms into the run (until
     * then such samples lose their caller): idle while it does, off the CPU clock. */
    usleep(500000);
    double start = cpu_s();
    /* Phases of 40-60 ms, many sampling periods each: a sample that also stands for the
     * end of the phase before it (its weight is the CPU time since the previous one) is a
     * small part of each. */
    for (int k = 0; k < 20; k++) {
        double t0 = cpu_s();
        sink += copy(1500);
        double t1 = cpu_s();
        sink += churn(3000000);
        double t2 = cpu_s();
        sink += spin(20000000);
        double t3 = cpu_s();
        in_copy += t1 - t0;
        in_churn += t2 - t1;
        in_spin += t3 - t2;
    }
    double all = cpu_s() - start;
    printf("share copy %.1f\nshare churn %.1f\nshare spin %.1f\nsink %g\n", 100 * in_copy / all,
           100 * in_churn / all, 100 * in_spin / all, sink);
    return 0;
}
