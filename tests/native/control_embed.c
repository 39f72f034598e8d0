/* Embeds CPython: links librprof.so and libpython, runs a Python loop whose hot line is
 * marked `# HOT-PY`, marks the switch, then runs a hot C function of its own, native_hot.
 * Both must be in one report. Prints the CPU time of each part.
 * Usage: control_embed SCRIPT SECONDS_NATIVE */
#include <Python.h>
#include <rprof.h>

#include <stdio.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile double sink;

__attribute__((noinline)) static void native_hot(double s)
{
    double x = 1, end = cpu_s() + s;
    while (cpu_s() < end)
        for (int i = 0; i < 10000; i++)
            x = x * 1.0000001 + 1e-9;
    sink = x;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    Py_Initialize();
    double t0 = cpu_s();
    /* Runs the script file so its lines are reported against a real path. */
    FILE *f = fopen(argv[1], "r");
    if (!f || PyRun_SimpleFileEx(f, argv[1], 1) != 0)
        return 3;
    double t1 = cpu_s();
    printf("mark %d\n", rprof_mark("python-done"));
    native_hot(atof(argv[2]));
    double t2 = cpu_s();
    if (Py_FinalizeEx() < 0)
        return 4;
    printf("cpu python %.4f native %.4f\n", t1 - t0, t2 - t1);
    return 0;
}
