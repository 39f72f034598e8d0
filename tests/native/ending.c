/* Burns a fixed amount of its own CPU time, then ends the way argv[1] says: exit, _exit,
 * segv (a SIGSEGV whose handler _exits), rawsegv (SIGSEGV, default action), abort, kill
 * (SIGKILL to itself), or exec (execs itself with "exit"). argv[2]: CPU milliseconds.
 * The reliability tests compare the samples each ending keeps with a normal exit's. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void on_segv(int sig) {
    (void)sig;
    _exit(3);
}

__attribute__((noinline)) static unsigned long burn(double ms) {
    double t0 = cpu_ms();
    volatile unsigned long x = 1;
    while (cpu_ms() - t0 < ms)
        for (int i = 0; i < 1000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "exit";
    double ms = argc > 2 ? atof(argv[2]) : 100;
    unsigned long x = burn(ms);
    if (!strcmp(how, "exit")) {
        printf("%lu\n", x & 1);
        exit(0);
    }
    if (!strcmp(how, "_exit"))
        _exit(0);
    if (!strcmp(how, "segv")) {
        signal(SIGSEGV, on_segv);
        *(volatile int *)0 = 1;
    }
    if (!strcmp(how, "rawsegv"))
        *(volatile int *)0 = 1;
    if (!strcmp(how, "abort"))
        abort();
    if (!strcmp(how, "kill"))
        raise(SIGKILL);
    if (!strcmp(how, "exec")) {
        char msarg[32];
        snprintf(msarg, sizeof msarg, "%g", ms);
        execl("/proc/self/exe", argv[0], "exit", msarg, (char *)NULL);
        perror("execl");
        return 1;
    }
    fprintf(stderr, "unknown ending %s\n", how);
    return 2;
}
