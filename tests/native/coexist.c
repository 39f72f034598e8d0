/* A program with signal handling and timers of its own, for tests/test_coexist.py: it must
 * behave the same with librprof.so preloaded. Each mode prints what it saw.
 *
 *   timer-prof   a POSIX timer on the process CPU clock signalling SIGPROF every 20 ms,
 *                counted by its own handler while it burns CPU: "ticks N cpu_ms M"
 *   timer-alrm   the same on the monotonic clock with SIGALRM: "ticks N wall_ms M"
 *   timer-rt     the same on SIGRTMIN+2 (the first signal rprof's sampler would take):
 *                "ticks N cpu_ms M"
 *   rt           a handler on every real-time signal, each sent once with sigqueue:
 *                "rt ok N" when each arrived once with its value
 *   query        what sigaction reports for SIGRTMIN+2 before and after it sets a handler
 *   segv         a SIGSEGV handler that recovers with siglongjmp, three faults: "recovered 3"
 *   resethand    a one-shot (SA_RESETHAND) SIGSEGV handler that returns: it prints
 *                "handled" once, and the fault again then kills the process with SIGSEGV
 *   sigwait-rt   SIGRTMIN+2 blocked, sent to itself 20 times with sigqueue and taken with
 *                sigtimedwait (2 s at most each): "waited 20"
 *   sigwait-usr1 the same with SIGUSR1
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;
static volatile sig_atomic_t bad;

static void count(int sig) {
    (void)sig;
    ticks++;
}

static double clock_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static volatile unsigned long sink;

/* Burns CPU until `c` has advanced by `ms`. */
static void burn(clockid_t c, double ms) {
    double end = clock_ms(c) + ms;
    while (clock_ms(c) < end)
        for (int i = 0; i < 10000; i++)
            sink += i * i;
}

static void on(int sig, void (*h)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(3);
    }
}

static int timer_mode(clockid_t clock, int sig, const char *what) {
    on(sig, count, SA_RESTART);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = sig;
    sev.sigev_value.sival_int = 42;
    timer_t t;
    if (timer_create(clock, &sev, &t) != 0) {
        perror("timer_create");
        return 3;
    }
    struct itimerspec its = {{0, 20000000}, {0, 20000000}};
    double c0 = clock_ms(clock);
    timer_settime(t, 0, &its, NULL);
    burn(clock, 1500);
    struct itimerspec off;
    memset(&off, 0, sizeof off);
    timer_settime(t, 0, &off, NULL);
    printf("ticks %d %s %.0f\n", (int)ticks, what, clock_ms(clock) - c0);
    return 0;
}

static void rt_handler(int sig, siginfo_t *info, void *uc) {
    (void)uc;
    if (info->si_value.sival_int != sig * 7 || info->si_code != SI_QUEUE)
        bad++;
    ticks++;
}

static int rt_mode(void) {
    int n = 0;
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = rt_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) != 0) {
            perror("sigaction");
            return 3;
        }
        union sigval v = {.sival_int = sig * 7};
        sigqueue(getpid(), sig, v);
        n++;
    }
    /* Queued signals to the process are delivered by now (to this, its only thread). */
    printf("rt %s %d of %d\n", bad == 0 && ticks == n ? "ok" : "BAD", (int)ticks, n);
    return 0;
}

static int query_mode(void) {
    struct sigaction old;
    int sig = SIGRTMIN + 2;
    sigaction(sig, NULL, &old);
    printf("before %s\n", old.sa_handler == SIG_DFL ? "default" : "other");
    on(sig, count, 0);
    sigaction(sig, NULL, &old);
    printf("after %s\n", old.sa_handler == count ? "ours" : "other");
    raise(sig);
    printf("raised ticks %d\n", (int)ticks);
    return 0;
}

static sigjmp_buf env;

static void recover(int sig) {
    (void)sig;
    siglongjmp(env, 1);
}

static int segv_mode(void) {
    on(SIGSEGV, recover, SA_NODEFER);
    int recovered = 0;
    for (int i = 0; i < 3; i++) {
        if (sigsetjmp(env, 1) == 0)
            *(volatile int *)(uintptr_t)(16 + i) = 1;
        else
            recovered++;
    }
    printf("recovered %d\n", recovered);
    return 0;
}

static void once(int sig) {
    (void)sig;
    static const char msg[] = "handled\n";
    write(1, msg, sizeof msg - 1);
}

static int resethand_mode(void) {
    on(SIGSEGV, once, SA_RESETHAND);
    *(volatile int *)(uintptr_t)8 = 1;
    printf("survived\n");
    return 0;
}

static int sigwait_mode(int sig) {
    int got = 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < 20; i++) {
        union sigval v = {.sival_int = i};
        sigqueue(getpid(), sig, v);
        siginfo_t info;
        struct timespec limit = {2, 0};
        if (sigtimedwait(&set, &info, &limit) == sig && info.si_value.sival_int == i)
            got++;
    }
    printf("waited %d\n", got);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "timer-prof"))
        return timer_mode(CLOCK_PROCESS_CPUTIME_ID, SIGPROF, "cpu_ms");
    if (!strcmp(m, "timer-alrm"))
        return timer_mode(CLOCK_MONOTONIC, SIGALRM, "wall_ms");
    if (!strcmp(m, "timer-rt"))
        return timer_mode(CLOCK_PROCESS_CPUTIME_ID, SIGRTMIN + 2, "cpu_ms");
    if (!strcmp(m, "rt"))
        return rt_mode();
    if (!strcmp(m, "query"))
        return query_mode();
    if (!strcmp(m, "segv"))
        return segv_mode();
    if (!strcmp(m, "sigwait-rt"))
        return sigwait_mode(SIGRTMIN + 2);
    if (!strcmp(m, "sigwait-usr1"))
        return sigwait_mode(SIGUSR1);
    if (!strcmp(m, "resethand"))
        return resethand_mode();
    fprintf(stderr, "usage: coexist timer-prof|timer-alrm|timer-rt|rt|query|segv|resethand|sigwait-rt|sigwait-usr1\n");
    return 2;
}
