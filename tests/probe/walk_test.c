/*
 * Test library for tests/probe/walk_check.py: linked with shim/src/python/probe.c into one
 * shared object that Python loads with ctypes, so the probe walks the caller's real stack.
 * Also: a native (non-Python) thread, fault-guard checks, timing, a SIGPROF sampler, and an
 * LD_PRELOAD constructor check (WT_CTOR=1) that runs detect and a walk before Python starts.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>

#include "rprof_probe.h"

/* probe.c's entry points (declared in Rust in mod.rs). */
int rprof_probe_detect(struct rprof_py_probe *p, size_t size, char *msg, size_t msglen);
int rprof_probe_is_interpreter_pc(const struct rprof_py_probe *p, uintptr_t pc);
size_t rprof_probe_walk(const struct rprof_py_probe *p, struct rprof_raw_frame *out, size_t cap,
                        int *truncated);
int rprof_probe_code_ref(const struct rprof_py_probe *p, uintptr_t code,
                         struct rprof_py_code_ref *out);
int rprof_probe_copy(uintptr_t src, void *dst, size_t len);
void rprof_probe_on_fault(void);
size_t rprof_probe_thread_name(const struct rprof_py_probe *p, uint8_t *out, size_t cap,
                               uint8_t *kind);

static struct rprof_py_probe probe;
static char message[192];

#define WT_MAX 512

struct wt_frame {
    uint64_t code;
    int32_t addrq;
    int32_t ok; /* code_ref succeeded */
    uint64_t key[4];
    uint64_t fname, fname_len, qname, qname_len, table, table_len;
    uint32_t fname_kind, qname_kind;
    int32_t first_line, pad;
};

int wt_detect(void) { return rprof_probe_detect(&probe, sizeof probe, message, sizeof message); }
const char *wt_message(void) { return message; }
uint32_t wt_version(void) { return probe.version_hex; }
int wt_is_interpreter_pc(uintptr_t pc) { return rprof_probe_is_interpreter_pc(&probe, pc); }

/* The calling thread's threading name as the probe reads it: bytes copied, *kind set. */
size_t wt_thread_name(uint8_t *out, size_t cap, uint8_t *kind)
{
    return rprof_probe_thread_name(&probe, out, cap, kind);
}

int wt_walk(struct wt_frame *out, int cap, int *truncated)
{
    struct rprof_raw_frame raw[WT_MAX];
    if (cap > WT_MAX)
        cap = WT_MAX;
    size_t n = rprof_probe_walk(&probe, raw, (size_t)cap, truncated);
    for (size_t i = 0; i < n; i++) {
        struct rprof_py_code_ref r;
        memset(&out[i], 0, sizeof out[i]);
        out[i].code = raw[i].code;
        out[i].addrq = raw[i].addrq;
        out[i].ok = rprof_probe_code_ref(&probe, raw[i].code, &r);
        if (!out[i].ok)
            continue;
        for (int k = 0; k < 4; k++)
            out[i].key[k] = r.key[k];
        out[i].fname = r.filename.ptr;
        out[i].fname_len = r.filename.len;
        out[i].fname_kind = r.filename.kind;
        out[i].qname = r.qualname.ptr;
        out[i].qname_len = r.qualname.len;
        out[i].qname_kind = r.qualname.kind;
        out[i].table = r.linetable;
        out[i].table_len = r.linetable_len;
        out[i].first_line = r.first_line;
    }
    return (int)n;
}

static void *native_thread(void *arg)
{
    struct rprof_raw_frame raw[8];
    int truncated = 0;
    *(size_t *)arg = rprof_probe_walk(&probe, raw, 8, &truncated) + (size_t)truncated;
    return NULL;
}

/* A thread Python never saw: no thread state, so no frames. Returns frames + truncated. */
int wt_walk_native_thread(void)
{
    pthread_t t;
    size_t n = 99;
    if (pthread_create(&t, NULL, native_thread, &n))
        return -1;
    pthread_join(t, NULL);
    return (int)n;
}

static void on_segv(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    rprof_probe_on_fault();
    abort(); /* a fault outside a guarded read */
}

static struct sigaction old_segv, old_bus;

/* What the shim does: SA_NODEFER handler that gives guarded reads the first chance. */
void wt_install_fault_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

void wt_remove_fault_handler(void)
{
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
}

/* Reads of unmapped memory through every guarded entry point. Returns a failure bitmask. */
int wt_fault_checks(void)
{
    int fails = 0;
    char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 1 << 30;
    char buf[64];
    if (rprof_probe_copy((uintptr_t)page + 16, buf, sizeof buf))
        fails |= 1;
    struct rprof_py_code_ref r;
    if (rprof_probe_code_ref(&probe, (uintptr_t)page + 16, &r))
        fails |= 2;
    /* A probe whose _PyRuntime lies in the unmapped page: the walk's first load faults. */
    struct rprof_py_probe bad = probe;
    bad.runtime = (uintptr_t)page;
    bad.layout.rt_autotss = 64;
    struct rprof_raw_frame raw[4];
    int truncated = 0;
    if (rprof_probe_walk(&bad, raw, 4, &truncated) != 0 || truncated != 1)
        fails |= 4;
    /* The guard is released again: a good walk and copy still work afterwards. */
    if (!rprof_probe_copy((uintptr_t)buf, buf + 32, 16))
        fails |= 8;
    munmap(page, 4096);
    return fails;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Mean ns per walk of the caller's stack; *depth gets the frames found. */
double wt_bench_walk(int iters, int *depth)
{
    struct rprof_raw_frame raw[128];
    int truncated;
    double t0 = now_ns();
    for (int i = 0; i < iters; i++)
        *depth = (int)rprof_probe_walk(&probe, raw, 128, &truncated);
    return (now_ns() - t0) / iters;
}

/* Mean ns per walk plus a code_ref of every frame (the sampler's first-sight path). */
double wt_bench_walk_code_ref(int iters)
{
    struct rprof_raw_frame raw[128];
    struct rprof_py_code_ref r;
    int truncated;
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        size_t n = rprof_probe_walk(&probe, raw, 128, &truncated);
        for (size_t k = 0; k < n; k++)
            rprof_probe_code_ref(&probe, raw[k].code, &r);
    }
    return (now_ns() - t0) / iters;
}

/* ns per thread-name read from the calling thread; *len: the bytes the last one read. */
double wt_bench_thread_name(int iters, int *len)
{
    uint8_t name[120], kind;
    size_t n = 0;
    double t0 = now_ns();
    for (int i = 0; i < iters; i++)
        n = rprof_probe_thread_name(&probe, name, sizeof name, &kind);
    *len = (int)n;
    return (now_ns() - t0) / iters;
}

/* SIGPROF sampler: each sample walks the interrupted thread and keeps its leaf frame. */
#define WT_SAMPLES (1 << 16)
struct wt_sample {
    uint64_t code;
    int32_t addrq;
    int32_t depth;
    int32_t truncated;
    int32_t code_ref_failed;
    int32_t name_len; /* the thread name read at this sample (bytes; 0 none) */
    char name[16];    /* its first bytes */
};
static struct wt_sample samples[WT_SAMPLES];
static unsigned nsamples;

static void on_prof(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    struct rprof_raw_frame raw[64];
    int truncated = 0;
    size_t n = rprof_probe_walk(&probe, raw, 64, &truncated);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct rprof_py_code_ref r;
        failed += !rprof_probe_code_ref(&probe, raw[i].code, &r);
    }
    unsigned i = __atomic_fetch_add(&nsamples, 1, __ATOMIC_RELAXED);
    if (i >= WT_SAMPLES)
        return;
    samples[i].code = n ? raw[0].code : 0;
    samples[i].addrq = n ? raw[0].addrq : -1;
    samples[i].depth = (int32_t)n;
    samples[i].truncated = truncated;
    samples[i].code_ref_failed = failed;
    uint8_t name[120], kind = 0;
    size_t len = rprof_probe_thread_name(&probe, name, sizeof name, &kind);
    samples[i].name_len = (int32_t)len;
    memcpy(samples[i].name, name, len < sizeof samples[i].name ? len : sizeof samples[i].name);
}

void wt_prof_start(int interval_us)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    nsamples = 0;
    struct itimerval it = {{0, interval_us}, {0, interval_us}};
    setitimer(ITIMER_PROF, &it, NULL);
}

/* Disarms the timer; returns the samples kept. */
int wt_prof_stop(void)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_PROF, &it, NULL);
    signal(SIGPROF, SIG_IGN);
    unsigned n = __atomic_load_n(&nsamples, __ATOMIC_RELAXED);
    return (int)(n < WT_SAMPLES ? n : WT_SAMPLES);
}

const struct wt_sample *wt_prof_samples(void) { return samples; }

__attribute__((constructor)) static void wt_ctor(void)
{
    if (!getenv("WT_CTOR"))
        return;
    int rc = wt_detect();
    struct rprof_raw_frame raw[8];
    int truncated = 0;
    size_t n = rc == 0 ? rprof_probe_walk(&probe, raw, 8, &truncated) : 0;
    fprintf(stderr, "wt-ctor rc=%d version=%#x frames=%zu truncated=%d msg=%s\n", rc,
            probe.version_hex, n, truncated, message);
}
