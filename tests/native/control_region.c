/* Links librprof.so directly (no LD_PRELOAD) and profiles only its marked region through
 * rprof.h: outside_before and outside_after burn CPU with recording stopped, inside_region
 * with it on. Prints the CPU time each part took (the truth the test compares with) and
 * the return codes of the API calls.
 * Usage: control_region TRACE_PATH SECONDS_OUTSIDE SECONDS_INSIDE */
#include <rprof.h>

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

/* Each burns `s` seconds of CPU; noinline so each keeps its own name in the report. */
__attribute__((noinline)) static void outside_before(double s)
{
    double x = 1, end = cpu_s() + s;
    while (cpu_s() < end)
        for (int i = 0; i < 10000; i++)
            x = x * 1.0000001 + 1e-9;
    sink = x;
}

__attribute__((noinline)) static void inside_region(double s)
{
    double x = 2, end = cpu_s() + s;
    while (cpu_s() < end)
        for (int i = 0; i < 10000; i++)
            x = x * 0.9999999 + 1e-9;
    sink = x;
}

__attribute__((noinline)) static void outside_after(double s)
{
    double x = 3, end = cpu_s() + s;
    while (cpu_s() < end)
        for (int i = 0; i < 10000; i++)
            x = x * 1.0000002 - 1e-9;
    sink = x;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    double out = atof(argv[2]), in = atof(argv[3]);
    printf("version %s\n", rprof_version());
    printf("set_output %d\n", rprof_set_output(argv[1]));
    double t0 = cpu_s();
    outside_before(out / 2);
    double t1 = cpu_s();
    printf("mark %d\n", rprof_mark("region-start"));
    printf("start %d\n", rprof_start());
    inside_region(in);
    printf("stop %d\n", rprof_stop());
    printf("mark %d\n", rprof_mark("region-end"));
    double t2 = cpu_s();
    outside_after(out / 2);
    double t3 = cpu_s();
    /* Too late: recording started, so the trace's path is fixed. */
    printf("late_set_output %d\n", rprof_set_output("elsewhere.trace"));
    printf("flush %d\n", rprof_flush());
    printf("cpu outside %.4f inside %.4f\n", (t1 - t0) + (t3 - t2), t2 - t1);
    return 0;
}
