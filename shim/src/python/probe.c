/*
 * The CPython probe's init-time detection and its fault-guarded entry points (called from
 * shim/src/python/mod.rs). The readers themselves are in rprof_probe.h beside it.
 *
 * Fault guard: a guarded entry point publishes a sigjmp_buf in initial-exec TLS; the shim's
 * SIGSEGV/SIGBUS handler (installed with SA_NODEFER) calls rprof_probe_on_fault() first, which
 * jumps back to the entry point if the faulting thread is inside one. sigsetjmp(env, 0) skips
 * the sigprocmask syscall: with SA_NODEFER the fault signal was never blocked. Guards nest (a
 * SIGPROF walk interrupting a malloc-hook walk on the same thread) by saving the previous one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "rprof_probe.h"

static __thread sigjmp_buf *rprof_guard __attribute__((tls_model("initial-exec")));

/* The Rust mirrors (RawFrame, StrRef, FfiCodeRef in mod.rs) assert the same numbers. */
_Static_assert(sizeof(struct rprof_raw_frame) == 16, "RawFrame");
_Static_assert(sizeof(struct rprof_py_str) == 24, "StrRef");
_Static_assert(offsetof(struct rprof_py_code_ref, first_line) == 96, "FfiCodeRef");
_Static_assert(sizeof(struct rprof_py_code_ref) == 104, "FfiCodeRef");
_Static_assert(sizeof(struct rprof_py_probe) <= 512, "STATE_BYTES");

#define RPROF_FENCE() __atomic_signal_fence(__ATOMIC_SEQ_CST)

/* A guarded entry point's prologue: arms the guard (saving the one it nests in) and, when a
 * fault jumps back here, disarms it and runs `on_fault`, which must return. What `on_fault`
 * reads that the guarded code changed must be volatile. RPROF_GUARD_LEAVE disarms it. */
#define RPROF_GUARD_ENTER(on_fault)       \
    sigjmp_buf env;                       \
    sigjmp_buf *prev = rprof_guard;       \
    if (sigsetjmp(env, 0)) {              \
        rprof_guard = prev;               \
        on_fault                          \
    }                                     \
    rprof_guard = &env;                   \
    RPROF_FENCE()
#define RPROF_GUARD_LEAVE()               \
    do {                                  \
        RPROF_FENCE();                    \
        rprof_guard = prev;               \
    } while (0)

void rprof_probe_on_fault(void)
{
    sigjmp_buf *env = rprof_guard;
    if (env)
        siglongjmp(*env, 1);
}

/* Results of rprof_probe_detect(), mirrored in mod.rs. */
enum { DETECT_OK = 0, DETECT_NOT_PYTHON = 1, DETECT_UNSUPPORTED = 2 };

struct text_search {
    uintptr_t addr;
    struct rprof_py_probe *p;
};

/* Records the executable PT_LOAD segments of the object that contains _PyRuntime. */
static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
    struct text_search *s = data;
    (void)size;
    int found = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->addr >= start && s->addr < start + ph->p_memsz)
            found = 1;
    }
    if (!found)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && s->p->ntext < RPROF_PY_MAX_TEXT; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            uintptr_t start = info->dlpi_addr + ph->p_vaddr;
            s->p->text[s->p->ntext][0] = start;
            s->p->text[s->p->ntext][1] = start + ph->p_memsz;
            s->p->ntext++;
        }
    }
    return 1;
}

/* "3.9.5 (default, ...)" -> 0x030905f0. The release level is not needed, only the minor. */
static uint32_t parse_version(const char *v)
{
    unsigned major = 0, minor = 0, micro = 0;
    if (sscanf(v, "%u.%u.%u", &major, &minor, &micro) < 2 || major > 255 || minor > 255)
        return 0;
    return (major << 24) | (minor << 16) | ((micro & 0xff) << 8) | 0xf0;
}

/*
 * Init time only (dlsym, dl_iterate_phdr, Py_GetVersion). Fills *p (of `size` bytes) and
 * returns DETECT_OK, or DETECT_NOT_PYTHON, or DETECT_UNSUPPORTED with a one-line reason in msg.
 */
int rprof_probe_detect(struct rprof_py_probe *p, size_t size, char *msg, size_t msglen)
{
    void *runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!runtime)
        return DETECT_NOT_PYTHON;
    if (size < sizeof *p) {
        snprintf(msg, msglen, "CPython probe state does not fit; native-only profiling");
        return DETECT_UNSUPPORTED;
    }
    uint32_t version = 0;
    const unsigned long *py_version = dlsym(RTLD_DEFAULT, "Py_Version"); /* 3.11+ */
    if (py_version) {
        version = (uint32_t)*py_version;
    } else {
        const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
        if (get_version)
            version = parse_version(get_version());
    }
    unsigned major = version >> 24, minor = (version >> 16) & 0xff;
    if (!version) {
        snprintf(msg, msglen, "CPython of unknown version; native-only profiling");
        return DETECT_UNSUPPORTED;
    }
    uintptr_t code_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
    uintptr_t unicode_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyUnicode_Type");
    uintptr_t bytes_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyBytes_Type");
    uintptr_t frame_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyFrame_Type");
    if (!code_type || !unicode_type || !bytes_type || !frame_type) {
        snprintf(msg, msglen, "CPython %u.%u exports no type objects; native-only profiling",
                 major, minor);
        return DETECT_UNSUPPORTED;
    }
    uint32_t bad_pos = 0;
    switch (rprof_py_probe_init(p, (uintptr_t)runtime, version, code_type, unicode_type,
                                bytes_type, frame_type, &bad_pos)) {
    case RPROF_PY_OK:
        break;
    case RPROF_PY_UNSUPPORTED_VERSION:
        snprintf(msg, msglen, "CPython %u.%u is not supported; native-only profiling", major,
                 minor);
        return DETECT_UNSUPPORTED;
    case RPROF_PY_FREE_THREADED:
        snprintf(msg, msglen,
                 "CPython %u.%u free-threaded build is not supported; native-only profiling",
                 major, minor);
        return DETECT_UNSUPPORTED;
    case RPROF_PY_DEBUG_OFFSET_MISMATCH:
        snprintf(msg, msglen,
                 "CPython %u.%u has an unexpected layout (_Py_DebugOffsets byte %u); "
                 "native-only profiling",
                 major, minor, bad_pos);
        return DETECT_UNSUPPORTED;
    case RPROF_PY_NO_DEBUG_OFFSETS:
    case RPROF_PY_DEBUG_VERSION_MISMATCH:
        snprintf(msg, msglen,
                 "CPython %u.%u has no matching _Py_DebugOffsets; native-only profiling", major,
                 minor);
        return DETECT_UNSUPPORTED;
    }
    struct text_search search = {.addr = (uintptr_t)runtime, .p = p};
    dl_iterate_phdr(find_text, &search);
    if (!p->ntext) {
        snprintf(msg, msglen, "CPython %u.%u text not found; native-only profiling", major,
                 minor);
        return DETECT_UNSUPPORTED;
    }
    return DETECT_OK;
}

uint32_t rprof_probe_version_hex(const struct rprof_py_probe *p) { return p->version_hex; }

int rprof_probe_is_interpreter_pc(const struct rprof_py_probe *p, uintptr_t pc)
{
    return rprof_py_is_interpreter_pc(p, pc);
}

/* Async-signal-safe. Returns the frames written; *truncated is set when frames were left out. */
size_t rprof_probe_walk(const struct rprof_py_probe *p, struct rprof_raw_frame *out, size_t cap,
                        int *truncated)
{
    volatile size_t n = 0;
    RPROF_GUARD_ENTER({ *truncated = 1; return n; });
    int t = rprof_py_walk(p, rprof_py_tstate(p), out, cap, &n);
    RPROF_GUARD_LEAVE();
    *truncated = t;
    return n;
}

/* Async-signal-safe. 1 and *out filled if `code` is a valid code object with compact names. */
int rprof_probe_code_ref(const struct rprof_py_probe *p, uintptr_t code,
                         struct rprof_py_code_ref *out)
{
    RPROF_GUARD_ENTER({ return 0; });
    int ok = rprof_py_code_ref(p, code, out);
    RPROF_GUARD_LEAVE();
    return ok;
}

/*
 * Async-signal-safe, bounded, fault-guarded: copies the calling thread's threading name
 * (Thread._name) into out[0..cap), cut to whole code points, and sets *kind (bytes per code
 * point). Returns the bytes copied; 0 when the thread runs no threading.Thread, the version
 * is not covered, or a read failed validation or faulted.
 */
size_t rprof_probe_thread_name(const struct rprof_py_probe *p, uint8_t *out, size_t cap,
                               uint8_t *kind)
{
    RPROF_GUARD_ENTER({ return 0; });
    size_t n = 0;
    struct rprof_py_str name;
    if (rprof_py_thread_name(p, &name)) {
        n = (name.len < cap / name.kind ? name.len : cap / name.kind) * name.kind;
        memcpy(out, (const void *)name.ptr, n);
        *kind = name.kind;
    }
    RPROF_GUARD_LEAVE();
    return n;
}

/* Async-signal-safe memcpy from possibly unmapped memory; 0 if it faulted. */
int rprof_probe_copy(uintptr_t src, void *dst, size_t len)
{
    if (!len)
        return 1;
    if (src < 4096 || src + len < src)
        return 0;
    RPROF_GUARD_ENTER({ return 0; });
    memcpy(dst, (const void *)src, len);
    RPROF_GUARD_LEAVE();
    return 1;
}

/* Async-signal-safe: follows a frame-pointer chain from `start`, writing return addresses.
 * Stops at a frame outside [lo, hi) (the thread's stack; hi 0 when unknown), not above the
 * previous one (the chain must climb the stack), misaligned, or at a fault: code built without
 * frame pointers ends the walk, it cannot crash it. The bounds matter for speed too: a fault
 * costs a signal delivery, tens of microseconds. */
size_t rprof_fp_walk(uintptr_t start, uintptr_t lo, uintptr_t top, uintptr_t *out, size_t cap)
{
    const volatile uintptr_t hi = top ? top : UINTPTR_MAX;
    volatile uintptr_t fp = start;
    volatile size_t n = 0;
    RPROF_GUARD_ENTER({ return n; });
    while (n < cap && fp >= lo && fp >= 4096 && fp <= hi - 16 && !(fp & 7)) {
        uintptr_t next = ((const uintptr_t *)fp)[0];
        uintptr_t ret = ((const uintptr_t *)fp)[1];
        if (ret < 4096)
            break;
        out[n] = ret;
        n = n + 1;
        if (next <= fp || next - fp > (1u << 24))
            break;
        fp = next;
    }
    RPROF_GUARD_LEAVE();
    return n;
}

/* Async-signal-safe: nonzero once the interpreter has begun finalizing (_PyRuntime._finalizing
 * is set). _PyRuntime is static data, always mapped. The field follows four ints (3.8-3.10) or
 * five (3.11, 3.12); from 3.13 the debug offsets give its place (runtime_state.finalizing,
 * stored at byte 32 of _PyRuntime). */
int rprof_probe_finalizing(const struct rprof_py_probe *p)
{
    unsigned minor = (p->version_hex >> 16) & 0xff;
    uintptr_t off = minor <= 10 ? 16 : minor <= 12 ? 24 : *(const volatile uint64_t *)(p->runtime + 32);
    if (off < 16 || off > 4096 || (off & 7))
        return 0;
    return *(const volatile uintptr_t *)(p->runtime + off) != 0;
}
