/* Sends itself RPROF_TOGGLE_SIGNAL (SIGUSR2) around phases: off_a (recording on only if
 * RPROF_START says so: the test starts paused), then on_1, off_b, on_2, off_c, each burning
 * its share of CPU, a signal between phases flipping recording. Its own SIGUSR2 handler
 * counts deliveries: a program's handler runs after each toggle.
 * Usage: control_toggle SECONDS_PER_PHASE */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile double sink;
static volatile sig_atomic_t delivered;

static void on_usr2(int sig)
{
    (void)sig;
    delivered++;
}

#define PHASE(name, k)                                                         \
    __attribute__((noinline)) static void name(double s)                       \
    {                                                                          \
        double x = k, end = cpu_s() + s;                                       \
        while (cpu_s() < end)                                                  \
            for (int i = 0; i < 10000; i++)                                    \
                x = x * 1.0000001 + 1e-9;                                      \
        sink = x;                                                              \
    }
PHASE(off_a, 1)
PHASE(on_1, 2)
PHASE(off_b, 3)
PHASE(on_2, 4)
PHASE(off_c, 5)

int main(int argc, char **argv)
{
    double s = argc > 1 ? atof(argv[1]) : 0.3;
    signal(SIGUSR2, on_usr2);
    off_a(s);
    raise(SIGUSR2);
    on_1(s);
    raise(SIGUSR2);
    off_b(s);
    raise(SIGUSR2);
    on_2(s);
    raise(SIGUSR2);
    off_c(s);
    printf("delivered %d\n", (int)delivered);
    return 0;
}
