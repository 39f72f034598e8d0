/* CPU time spent inside the C library's allocator, charged to the allocation's caller:
 * churn() does little but malloc and free (most of its time is inside glibc, whose code
 * has no frame pointers), spin() does arithmetic. Prints each one's share of the run's
 * CPU time, measured here, as "share NAME PCT". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
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
    double in_churn = 0, in_spin = 0, sink = 0;
    double start = cpu_s();
    for (int k = 0; k < 250; k++) {
        double t0 = cpu_s();
        sink += churn(300000);
        double t1 = cpu_s();
        sink += spin(2000000);
        double t2 = cpu_s();
        in_churn += t1 - t0;
        in_spin += t2 - t1;
    }
    double all = cpu_s() - start;
    printf("share churn %.1f\nshare spin %.1f\nsink %g\n", 100 * in_churn / all, 100 * in_spin / all, sink);
    return 0;
}
