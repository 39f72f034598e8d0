// waits.c -- the C library's waiting calls under a profiler's sampling signal.
// Usage: waits MODE THREADS
//   sleeps   every thread makes CALLS timed waits of PERIOD_MS through each sleeping and
//            multiplexing call, and counts the calls that failed with EINTR and those that
//            returned before their time (or, for pause/sigsuspend, before their own signal)
//   sigwait  all signals blocked; every thread waits on a full set with sigtimedwait
//            (expecting timeouts), and with sigwaitinfo, sigwait and a signalfd for the
//            SIGUSR2 its own timer sends; counts EINTR, early returns and other signals
//   share    one thread alternates burn() (CPU), nanosleep and poll; prints the measured
//            share of each, to compare with a wall-clock profile's lines
//   cancel   threads cancelled while they sleep in nanosleep, poll and sigtimedwait
// Prints one line per call (totals over all threads), the same for any correct run.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define CALLS 30
#define PERIOD_MS 10
#define MAX_THREADS 16

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec period_ts(void) {
    return (struct timespec){0, PERIOD_MS * 1000000L};
}

// Per call: how many calls, how many failed with EINTR, how many came back early, and
// (sigwait mode) how many returned a signal other than the expected one.
enum { C_NANOSLEEP, C_CLOCK_NANOSLEEP, C_CLOCK_NANOSLEEP_ABS, C_USLEEP, C_SLEEP, C_POLL,
       C_PPOLL, C_PPOLL_MASK, C_SELECT, C_PSELECT, C_PSELECT_MASK, C_EPOLL_WAIT,
       C_EPOLL_PWAIT, C_EPOLL_PWAIT_MASK, C_EPOLL_PWAIT2, C_PAUSE, C_SIGSUSPEND,
       C_SIGTIMEDWAIT, C_SIGWAITINFO, C_SIGWAIT, C_SIGNALFD, NCALLS };
static const char *NAMES[NCALLS] = {
    "nanosleep", "clock_nanosleep", "clock_nanosleep_abs", "usleep", "sleep", "poll",
    "ppoll", "ppoll_mask", "select", "pselect", "pselect_mask", "epoll_wait",
    "epoll_pwait", "epoll_pwait_mask", "epoll_pwait2", "pause", "sigsuspend",
    "sigtimedwait", "sigwaitinfo", "sigwait", "signalfd"};
static atomic_int calls[NCALLS], eintr[NCALLS], early[NCALLS], other[NCALLS];
static atomic_int last_other_sig;

static void tally(int c, int failed_eintr, long long started, long long want_ns) {
    atomic_fetch_add(&calls[c], 1);
    if (failed_eintr)
        atomic_fetch_add(&eintr[c], 1);
    else if (now_ns() - started < want_ns)
        atomic_fetch_add(&early[c], 1);
}

// A one-shot timer that sends `sig` to the calling thread after PERIOD_MS.
static timer_t thread_timer(int sig) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = sig;
    sev._sigev_un._tid = gettid();
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
        perror("timer_create");
        exit(2);
    }
    return t;
}

static void fire_in_period(timer_t t) {
    struct itimerspec its = {{0, 0}, period_ts()};
    timer_settime(t, 0, &its, NULL);
}

static __thread volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static void *sleeps(void *arg) {
    (void)arg;
    const long long want = PERIOD_MS * 1000000LL;
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); exit(2); }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
    sigset_t none;
    sigemptyset(&none);
    for (int i = 0; i < CALLS; i++) {
        long long t = now_ns();
        struct timespec ts = period_ts();
        tally(C_NANOSLEEP, nanosleep(&ts, NULL) != 0 && errno == EINTR, t, want);

        t = now_ns();
        tally(C_CLOCK_NANOSLEEP, clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == EINTR, t, want);

        t = now_ns();
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += ts.tv_nsec;
        if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
        tally(C_CLOCK_NANOSLEEP_ABS, clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR,
              t, want);

        t = now_ns();
        tally(C_USLEEP, usleep(PERIOD_MS * 1000) != 0 && errno == EINTR, t, want);

        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        t = now_ns();
        tally(C_POLL, poll(&pfd, 1, PERIOD_MS) < 0 && errno == EINTR, t, want);
        t = now_ns();
        tally(C_PPOLL, ppoll(&pfd, 1, &ts, NULL) < 0 && errno == EINTR, t, want);
        t = now_ns();
        tally(C_PPOLL_MASK, ppoll(&pfd, 1, &ts, &none) < 0 && errno == EINTR, t, want);

        fd_set set;
        FD_ZERO(&set);
        FD_SET(fds[0], &set);
        struct timeval tv = {0, PERIOD_MS * 1000};
        t = now_ns();
        tally(C_SELECT, select(fds[0] + 1, &set, NULL, NULL, &tv) < 0 && errno == EINTR, t, want);
        FD_SET(fds[0], &set);
        t = now_ns();
        tally(C_PSELECT, pselect(fds[0] + 1, &set, NULL, NULL, &ts, NULL) < 0 && errno == EINTR, t, want);
        FD_SET(fds[0], &set);
        t = now_ns();
        tally(C_PSELECT_MASK, pselect(fds[0] + 1, &set, NULL, NULL, &ts, &none) < 0 && errno == EINTR, t, want);

        struct epoll_event out;
        t = now_ns();
        tally(C_EPOLL_WAIT, epoll_wait(ep, &out, 1, PERIOD_MS) < 0 && errno == EINTR, t, want);
        t = now_ns();
        tally(C_EPOLL_PWAIT, epoll_pwait(ep, &out, 1, PERIOD_MS, NULL) < 0 && errno == EINTR, t, want);
        t = now_ns();
        tally(C_EPOLL_PWAIT_MASK, epoll_pwait(ep, &out, 1, PERIOD_MS, &none) < 0 && errno == EINTR, t, want);
        t = now_ns();
        tally(C_EPOLL_PWAIT2, epoll_pwait2(ep, &out, 1, &ts, NULL) < 0 && errno == EINTR, t, want);
    }

    // sleep(1) twice: it returns the seconds left unslept.
    for (int i = 0; i < 2; i++) {
        long long t = now_ns();
        unsigned left = sleep(1);
        atomic_fetch_add(&calls[C_SLEEP], 1);
        if (left != 0 || now_ns() - t < 1000000000LL)
            atomic_fetch_add(&early[C_SLEEP], 1);
    }

    // pause and sigsuspend return after a handler ran: each must wait for this thread's
    // own SIGUSR1, from its timer, and for nothing else.
    timer_t usr1 = thread_timer(SIGUSR1);
    sigset_t usr1_set, blocked;
    sigemptyset(&usr1_set);
    sigaddset(&usr1_set, SIGUSR1);
    for (int i = 0; i < CALLS; i++) {
        got_usr1 = 0;
        fire_in_period(usr1);
        pause();
        atomic_fetch_add(&calls[C_PAUSE], 1);
        if (!got_usr1) {
            atomic_fetch_add(&early[C_PAUSE], 1);
            while (!got_usr1) pause();
        }
    }
    pthread_sigmask(SIG_BLOCK, &usr1_set, &blocked);
    sigdelset(&blocked, SIGUSR1);
    for (int i = 0; i < CALLS; i++) {
        got_usr1 = 0;
        fire_in_period(usr1);
        sigsuspend(&blocked);
        atomic_fetch_add(&calls[C_SIGSUSPEND], 1);
        if (!got_usr1) {
            atomic_fetch_add(&early[C_SIGSUSPEND], 1);
            while (!got_usr1) sigsuspend(&blocked);
        }
    }
    pthread_sigmask(SIG_UNBLOCK, &usr1_set, NULL);
    timer_delete(usr1);
    close(ep);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void note_signal(int c, int sig, int want) {
    atomic_fetch_add(&calls[c], 1);
    if (sig < 0 && errno == EINTR)
        atomic_fetch_add(&eintr[c], 1);
    else if (sig != want) {
        atomic_fetch_add(&other[c], 1);
        atomic_store(&last_other_sig, sig);
    }
}

// Runs with every signal blocked (inherited from main).
static void *sigwaits(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    const long long want = PERIOD_MS * 1000000LL;
    for (int i = 0; i < CALLS; i++) {
        struct timespec ts = period_ts();
        siginfo_t si;
        long long t = now_ns();
        int sig = sigtimedwait(&all, &si, &ts);
        atomic_fetch_add(&calls[C_SIGTIMEDWAIT], 1);
        if (sig < 0 && errno == EINTR)
            atomic_fetch_add(&eintr[C_SIGTIMEDWAIT], 1);
        else if (sig >= 0) {
            atomic_fetch_add(&other[C_SIGTIMEDWAIT], 1);
            atomic_store(&last_other_sig, sig);
        } else if (now_ns() - t < want)
            atomic_fetch_add(&early[C_SIGTIMEDWAIT], 1);
    }
    timer_t usr2 = thread_timer(SIGUSR2);
    for (int i = 0; i < CALLS; i++) {
        siginfo_t si;
        fire_in_period(usr2);
        note_signal(C_SIGWAITINFO, sigwaitinfo(&all, &si), SIGUSR2);
    }
    for (int i = 0; i < CALLS; i++) {
        int sig = 0;
        fire_in_period(usr2);
        int rc = sigwait(&all, &sig);
        note_signal(C_SIGWAIT, rc == 0 ? sig : -1, SIGUSR2);
    }
    int sfd = signalfd(-1, &all, SFD_CLOEXEC);
    if (sfd < 0) { perror("signalfd"); exit(2); }
    for (int i = 0; i < CALLS; i++) {
        struct signalfd_siginfo ssi;
        fire_in_period(usr2);
        ssize_t n = read(sfd, &ssi, sizeof ssi);
        note_signal(C_SIGNALFD, n == (ssize_t)sizeof ssi ? (int)ssi.ssi_signo : -1, SIGUSR2);
    }
    close(sfd);
    timer_delete(usr2);
    return NULL;
}

// The share workload: how long each part took, measured.
static volatile unsigned long sink;
static long long burn_ns, sleep_ns, poll_ns;

__attribute__((noinline)) static void burn(long long ns) {
    long long end = now_ns() + ns;
    while (now_ns() < end)
        for (int i = 0; i < 1000; i++) sink += i;  // LINE burn
}

static int share(void) {
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 2; }
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    for (int i = 0; i < 150; i++) {
        long long t0 = now_ns();
        burn(4000000);
        long long t1 = now_ns();
        struct timespec ts = {0, 3000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}  // LINE nanosleep
        long long t2 = now_ns();
        poll(&pfd, 1, 3);  // LINE poll
        long long t3 = now_ns();
        burn_ns += t1 - t0;
        sleep_ns += t2 - t1;
        poll_ns += t3 - t2;
    }
    double all = (double)(burn_ns + sleep_ns + poll_ns);
    printf("share burn %.3f nanosleep %.3f poll %.3f\n", burn_ns / all, sleep_ns / all, poll_ns / all);
    return 0;
}

static void *cancelled(void *arg) {
    long which = (long)arg;
    if (which == 0) {
        struct timespec ts = {10, 0};
        nanosleep(&ts, NULL);
    } else if (which == 1) {
        poll(NULL, 0, 10000);
    } else {
        sigset_t usr2;
        sigemptyset(&usr2);
        sigaddset(&usr2, SIGUSR2);
        struct timespec ts = {10, 0};
        sigtimedwait(&usr2, NULL, &ts);
    }
    return NULL;
}

static int cancel(void) {
    for (long which = 0; which < 3; which++) {
        pthread_t th;
        pthread_create(&th, NULL, cancelled, (void *)which);
        usleep(50000);
        pthread_cancel(th);
        void *ret;
        pthread_join(th, &ret);
        printf("cancel %ld %s\n", which, ret == PTHREAD_CANCELED ? "cancelled" : "returned");
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sleeps";
    int nt = argc > 2 ? atoi(argv[2]) : 1;
    if (nt < 1 || nt > MAX_THREADS) nt = 1;
    if (strcmp(mode, "share") == 0) return share();
    if (strcmp(mode, "cancel") == 0) return cancel();
    void *(*body)(void *);
    if (strcmp(mode, "sleeps") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
        body = sleeps;
    } else if (strcmp(mode, "sigwait") == 0) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        body = sigwaits;
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    // One thread: the main thread itself (its timer is the process's first).
    pthread_t th[MAX_THREADS];
    if (nt == 1)
        body(NULL);
    else {
        for (int t = 0; t < nt; t++) pthread_create(&th[t], NULL, body, NULL);
        for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
    }
    for (int c = 0; c < NCALLS; c++)
        if (calls[c])
            printf("%-20s calls %3d eintr %3d early %3d other %3d\n", NAMES[c], calls[c], eintr[c], early[c],
                   other[c]);
    if (last_other_sig)
        printf("last other signal %d\n", last_other_sig);
    return 0;
}
