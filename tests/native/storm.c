/* An allocation storm for the reliability tests: 8 threads allocating mixed sizes, with
 * realloc chains, aligned allocations and frees of blocks another thread allocated, a
 * fork from the multithreaded parent, and a thread sending signals to the process all the
 * while. Prints a result that depends only on the work (never on timing): each thread's
 * checksum of the bytes it wrote and read back, and the child's. Same output with and
 * without rprof, or something changed what the program does. argv[1]: rounds (work). */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define SLOTS 64

static long rounds = 2000;
static volatile sig_atomic_t signals_seen;
static volatile int stop_signals;

/* Blocks handed between threads: each thread frees what its neighbour left. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *handoff[THREADS][SLOTS];

static void on_usr1(int sig) {
    (void)sig;
    signals_seen++;
}

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t fill_and_sum(unsigned char *p, size_t n, uint64_t seed) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 61)
        p[i] = (unsigned char)(seed + i);
    for (size_t i = 0; i < n; i += 61)
        sum = sum * 31 + p[i];
    return sum;
}

static void *worker(void *arg) {
    long id = (long)arg;
    uint64_t s = 0x9e3779b97f4a7c15ULL * (id + 1), sum = 0;
    for (long r = 0; r < rounds; r++) {
        size_t n = 1 + next(&s) % ((r % 97 == 0) ? (1 << 20) : 4096);
        unsigned char *p;
        switch (next(&s) % 5) {
        case 0:
            p = malloc(n);
            break;
        case 1:
            p = calloc(1, n);
            break;
        case 2: {
            void *q = NULL;
            if (posix_memalign(&q, 64, n))
                q = NULL;
            p = q;
            break;
        }
        case 3:
            p = aligned_alloc(256, (n + 255) & ~(size_t)255);
            break;
        default:
            p = memalign(4096, n);
        }
        if (!p) {
            fprintf(stderr, "allocation failed\n");
            exit(1);
        }
        sum += fill_and_sum(p, n, s);
        /* A realloc chain: grow and shrink, the contents kept. */
        for (int k = 0; k < 4; k++) {
            size_t m = 1 + next(&s) % 8192;
            unsigned char first = p[0];
            unsigned char *q = realloc(p, m);
            if (!q) {
                fprintf(stderr, "realloc failed\n");
                exit(1);
            }
            p = q;
            if (p[0] != first) {
                fprintf(stderr, "realloc lost the contents\n");
                exit(1);
            }
            sum += fill_and_sum(p, m, s);
        }
        /* Hand it to the next thread, freeing what that slot held. */
        int slot = next(&s) % SLOTS;
        pthread_mutex_lock(&lock);
        void *old = handoff[(id + 1) % THREADS][slot];
        handoff[(id + 1) % THREADS][slot] = p;
        pthread_mutex_unlock(&lock);
        free(old);
    }
    printf("thread %ld sum %016llx\n", id, (unsigned long long)sum);
    return NULL;
}

static void *signaller(void *arg) {
    (void)arg;
    while (!stop_signals) {
        kill(getpid(), SIGUSR1);
        usleep(200);
    }
    return NULL;
}

/* A fork child of the multithreaded parent: allocates, checks, exits. */
static int forked_child(void) {
    uint64_t s = 42, sum = 0;
    for (int i = 0; i < 500; i++) {
        size_t n = 1 + next(&s) % 20000;
        unsigned char *p = malloc(n);
        if (!p)
            return 1;
        sum += fill_and_sum(p, n, s);
        free(p);
    }
    /* write(2), not stdio: the fork may have copied a worker's half-written line in
     * stdout's buffer, which stdio here would print a second time. */
    char line[64];
    int n = snprintf(line, sizeof line, "child sum %016llx\n", (unsigned long long)sum);
    return write(1, line, n) == n ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc > 1)
        rounds = atol(argv[1]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    pthread_t sig, t[THREADS];
    pthread_create(&sig, NULL, signaller, NULL);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    pid_t child = fork();
    if (child == 0)
        _exit(forked_child());
    int status = 0;
    while (waitpid(child, &status, 0) < 0)
        ;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    stop_signals = 1;
    pthread_join(sig, NULL);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < SLOTS; j++)
            free(handoff[i][j]);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    printf("signals %s\n", signals_seen > 0 ? "delivered" : "none");
    return 0;
}
