/* Recording stopped is not profiling off: blocks allocated while recording and freed while
 * stopped still leave the live set, and a thread created while stopped has its timer, so
 * it is sampled once recording starts again.
 * main allocates BLOCKS blocks of 2 MiB (recorded), stops, frees them all, creates a
 * thread, starts again, and the thread burns CPU in thread_hot.
 * Usage: control_late SECONDS */
#include <rprof.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCKS 32
#define BLOCK (2 << 20)

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static pthread_barrier_t go;
static double seconds;
static volatile double sink;

__attribute__((noinline)) static void thread_hot(double s)
{
    double x = 1, end = thread_cpu_s() + s;
    while (thread_cpu_s() < end)
        for (int i = 0; i < 10000; i++)
            x = x * 1.0000001 + 1e-9;
    sink = x;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&go);
    thread_hot(seconds);
    return NULL;
}

int main(int argc, char **argv)
{
    seconds = argc > 1 ? atof(argv[1]) : 0.4;
    char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        memset(blocks[i], i, BLOCK);
    }
    printf("stop %d\n", rprof_stop());
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    pthread_barrier_init(&go, NULL, 2);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    printf("start %d\n", rprof_start());
    pthread_barrier_wait(&go);
    pthread_join(t, NULL);
    return 0;
}
