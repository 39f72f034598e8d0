/* Counts the SIGINTs and SIGTERMs delivered to it, each in its own handler call (CPython
 * would run its handler once for two signals that arrive close together): prints
 * "ready", waits for the first, gives a second half a second to come, prints
 * "signals N" and exits 9. */
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t count;

static void on_signal(int sig) {
    (void)sig;
    count++;
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    struct timespec nap = {0, 1000000};
    while (!count)
        nanosleep(&nap, NULL);
    struct timespec grace = {0, 500000000};
    while (nanosleep(&grace, &grace) != 0) {
    }
    printf("signals %d\n", (int)count);
    return 9;
}
