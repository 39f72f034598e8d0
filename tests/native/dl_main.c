// dl_main.c -- dlopens LIB (dl_hot.c) and runs its hot_a and hot_b, ROUNDS times each
// (N_A and N_B iterations a round), alternating, each timed on the thread's CPU clock.
// Prints each function's share of the process's CPU time: the tests' truth.
// Usage: dl_main LIB
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

static double cpu(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 2) return 1;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    double (*a)(long) = (double (*)(long))dlsym(lib, "hot_a");
    double (*b)(long) = (double (*)(long))dlsym(lib, "hot_b");
    if (!a || !b) return 1;
    double ta = 0, tb = 0, sink = 0;
    for (int r = 0; r < 10; r++) {
        double t0 = cpu(CLOCK_THREAD_CPUTIME_ID);
        sink += a(30000000);
        double t1 = cpu(CLOCK_THREAD_CPUTIME_ID);
        sink += b(12000000);
        double t2 = cpu(CLOCK_THREAD_CPUTIME_ID);
        ta += t1 - t0;
        tb += t2 - t1;
    }
    double all = cpu(CLOCK_PROCESS_CPUTIME_ID);
    printf("sink %g\nshare hot_a %.1f\nshare hot_b %.1f\n", sink, 100 * ta / all, 100 * tb / all);
    return 0;
}
