/*
 * rprof_probe.h: in-process CPython frame probe (x86_64 Linux, default GIL builds, 3.8-3.14).
 *
 * Header-only, no Python headers. Every per-version fact lives in the tables below; the
 * walker and the code-object reader are table driven. Nothing here allocates, locks or calls
 * libc, except pthread_getspecific() in rprof_py_tstate() (a lock-free load in glibc).
 *
 * The readers do raw loads. They validate every pointer they follow, but a stale pointer can
 * still reach unmapped memory, so callers run them under a fault guard (shim/src/python/probe.c).
 *
 * Sources of the numbers: /work/shared/research/cpython-frame-probe.md sections 3-5. The 3.11
 * row is checked against the real headers by tests/probe/check_offsets.c; 3.13/3.14 are
 * cross-checked at run time against the interpreter's own _Py_DebugOffsets.
 */
#ifndef RPROF_PROBE_H
#define RPROF_PROBE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Facts shared by every supported version (default builds). */
#define RPROF_PY_OB_TYPE 8          /* PyObject.ob_type */
#define RPROF_PY_OB_SIZE 16         /* PyVarObject.ob_size; code objects: code units (3.11+) */
#define RPROF_PY_STR_LENGTH 16      /* PyASCIIObject.length (code points) */
#define RPROF_PY_STR_STATE 32       /* PyASCIIObject.state bit field, as a u32 */
#define RPROF_PY_BYTES_SVAL 32      /* PyBytesObject.ob_sval */
#define RPROF_PY_TSS_KEY 4          /* Py_tss_t: int _is_initialized at +0, pthread key at +4 */
#define RPROF_PY_OWNER_GENERATOR 1  /* FRAME_OWNED_BY_GENERATOR, 3.11-3.14 */
#define RPROF_PY_OWNER_FIRST_SHIM 3 /* 3.12/3.13 CSTACK=3; 3.14 INTERPRETER=3, CSTACK=4 */

/* state bits: interned:2, kind:3, compact:1, ascii:1 (3.8-3.14 default builds). */
#define RPROF_PY_STR_KIND(state) (((state) >> 2) & 7u)
#define RPROF_PY_STR_COMPACT 0x20u
#define RPROF_PY_STR_ASCII 0x40u

/* Sanity bounds: anything larger is treated as a torn or stale read. */
#define RPROF_PY_MAX_STR (1u << 20)      /* code points in a file or function name */
#define RPROF_PY_MAX_TABLE (1u << 24)    /* bytes of line table / bytecode */
#define RPROF_PY_MAX_SKIPPED 256         /* frames skipped (shim, incomplete) per walk */

/* How an instance of a plain Python class finds its attributes. */
enum rprof_py_obj_dict {
    RPROF_PY_DICT_AT_OFFSET = 1, /* <=3.10: a dict at tp_dictoffset */
    RPROF_PY_MANAGED_311 = 2,    /* values pointer at -4 words, dict at -3 words */
    RPROF_PY_MANAGED_312 = 3,    /* one word at -3: dict, or values - 1 (low bit set) */
    RPROF_PY_MANAGED_313 = 4,    /* dict at -3 words; else values inline at tp_basicsize */
};

/* Type and dict facts shared by 3.8-3.13 (tests/probe/check_offsets.c). */
#define RPROF_PY_TP_BASICSIZE 32
#define RPROF_PY_TP_FLAGS 168
#define RPROF_PY_TP_DICTOFFSET 288
#define RPROF_PY_TPFLAGS_INLINE_VALUES (1ul << 2) /* 3.13 */
#define RPROF_PY_TPFLAGS_MANAGED_DICT (1ul << 4)  /* 3.11+ */
#define RPROF_PY_MA_KEYS 32
#define RPROF_PY_MA_VALUES 40
#define RPROF_PY_VALUES_VALID 3 /* 3.13 PyDictValues.valid (u8) */
#define RPROF_PY_MAX_ATTRS 512  /* dict entries scanned for one attribute */

enum rprof_py_chain {
    RPROF_PY_FRAME_OBJECTS = 1, /* <=3.10: PyFrameObject via tstate->frame, f_back */
    RPROF_PY_INTERP_FRAMES = 2, /* 3.11+: _PyInterpreterFrame via previous */
};

/* One (position inside _PyRuntime, expected value) pair of the 3.13+ _Py_DebugOffsets. */
struct rprof_py_debug_check {
    uint16_t pos;
    uint16_t value;
};

struct rprof_py_layout {
    uint32_t minor;
    uint32_t chain;
    uint32_t lasti_scale;  /* <=3.10: bytes per f_lasti unit (3.10 counts code units) */
    uint32_t rt_autotss;   /* _PyRuntime: gilstate autoTSSkey (Py_tss_t) */
    uint32_t ts_cframe;    /* 3.11/3.12: tstate->cframe (0: the frame hangs off tstate) */
    uint32_t ts_frame;     /* innermost frame pointer, in the cframe or in the tstate */
    uint32_t fr_code;      /* f_code / f_executable */
    uint32_t fr_back;      /* f_back / previous */
    uint32_t fr_ip;        /* f_lasti (int) / prev_instr / instr_ptr */
    uint32_t fr_owner;     /* char owner (3.11+) */
    uintptr_t fr_code_tag; /* bits to clear from the code pointer (3.14 _PyStackRef) */
    uint32_t co_firstlineno;
    uint32_t co_filename;
    uint32_t co_qualname; /* co_qualname, or co_name before 3.11 */
    uint32_t co_linetable; /* co_linetable, or co_lnotab before 3.10 */
    uint32_t co_firsttraceable;
    uint32_t co_code; /* 3.11+: inline co_code_adaptive; <=3.10: the co_code bytes object */
    uint32_t str_ascii_size;   /* sizeof(PyASCIIObject): compact ASCII data follows */
    uint32_t str_compact_size; /* sizeof(PyCompactUnicodeObject): other compact data */
    /* Thread names (rprof_py_thread_name). fr_localsplus 0: not read (3.14 gives the OS thread
     * threading's name itself, which /proc shows). */
    uint32_t fr_localsplus;  /* f_localsplus / localsplus: the frame's first local */
    uint32_t obj_dict;       /* enum rprof_py_obj_dict: where an instance keeps its attributes */
    uint32_t ht_cached_keys; /* PyHeapTypeObject.ht_cached_keys (3.11+: shared keys) */
    uint32_t values_at;      /* PyDictValues: bytes before values[] (3.13 header) */
    const struct rprof_py_debug_check *debug;
    uint32_t ndebug;
};

/* 3.13+: where _Py_DebugOffsets keeps version, free_threaded (fixed across minors). */
#define RPROF_PY_DEBUG_COOKIE 0x7970677562656478ull /* "xdebugpy" little-endian */
#define RPROF_PY_DEBUG_VERSION 8
#define RPROF_PY_DEBUG_FREE_THREADED 16

/* 3.13: thread_state.current_frame, interpreter_frame.{size,previous,executable,instr_ptr,owner},
 * code_object.{filename,qualname,linetable,firstlineno,co_code_adaptive}, pyobject.ob_type,
 * bytes_object.{ob_size,ob_sval}, unicode_object.{state,length,asciiobject_size}. */
static const struct rprof_py_debug_check rprof_py_debug_313[] = {
    {184, 72}, {224, 80}, {232, 8},   {240, 0},   {248, 56},  {264, 70},  {280, 112},
    {296, 128}, {304, 136}, {312, 68}, {344, 200}, {360, 8},  {520, 16},  {528, 32},
    {544, 32}, {552, 16},  {560, 40},
};
/* 3.14: same fields; the struct grew (threads_main, tlbc, set_object ...). */
static const struct rprof_py_debug_check rprof_py_debug_314[] = {
    {208, 72}, {248, 88}, {256, 8},   {264, 0},   {272, 56},  {288, 74},  {320, 112},
    {336, 128}, {344, 136}, {352, 68}, {384, 208}, {408, 8},  {600, 16},  {608, 32},
    {624, 32}, {632, 16},  {640, 40},
};

#define RPROF_PY_NDEBUG(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static const struct rprof_py_layout rprof_py_layouts[] = {
    {.minor = 8, .chain = RPROF_PY_FRAME_OBJECTS, .lasti_scale = 1, .rt_autotss = 1392,
     .ts_frame = 24, .fr_code = 32, .fr_back = 24, .fr_ip = 104,
     .co_firstlineno = 40, .co_filename = 104, .co_qualname = 112, .co_linetable = 120,
     .co_code = 48, .str_ascii_size = 48, .str_compact_size = 72,
     .fr_localsplus = 360, .obj_dict = RPROF_PY_DICT_AT_OFFSET},
    {.minor = 9, .chain = RPROF_PY_FRAME_OBJECTS, .lasti_scale = 1, .rt_autotss = 584,
     .ts_frame = 24, .fr_code = 32, .fr_back = 24, .fr_ip = 104,
     .co_firstlineno = 40, .co_filename = 104, .co_qualname = 112, .co_linetable = 120,
     .co_code = 48, .str_ascii_size = 48, .str_compact_size = 72,
     .fr_localsplus = 360, .obj_dict = RPROF_PY_DICT_AT_OFFSET},
    {.minor = 10, .chain = RPROF_PY_FRAME_OBJECTS, .lasti_scale = 2, .rt_autotss = 584,
     .ts_frame = 24, .fr_code = 32, .fr_back = 24, .fr_ip = 96,
     .co_firstlineno = 40, .co_filename = 104, .co_qualname = 112, .co_linetable = 120,
     .co_code = 48, .str_ascii_size = 48, .str_compact_size = 72,
     .fr_localsplus = 352, .obj_dict = RPROF_PY_DICT_AT_OFFSET},
    {.minor = 11, .chain = RPROF_PY_INTERP_FRAMES, .rt_autotss = 592, .ts_cframe = 56,
     .ts_frame = 8, .fr_code = 32, .fr_back = 48, .fr_ip = 56, .fr_owner = 69,
     .co_firstlineno = 72, .co_filename = 112, .co_qualname = 128, .co_linetable = 136,
     .co_firsttraceable = 168, .co_code = 184, .str_ascii_size = 48, .str_compact_size = 72,
     .fr_localsplus = 72, .obj_dict = RPROF_PY_MANAGED_311, .ht_cached_keys = 872},
    {.minor = 12, .chain = RPROF_PY_INTERP_FRAMES, .rt_autotss = 1544, .ts_cframe = 56,
     .ts_frame = 0, .fr_code = 0, .fr_back = 8, .fr_ip = 56, .fr_owner = 70,
     .co_firstlineno = 68, .co_filename = 112, .co_qualname = 128, .co_linetable = 136,
     .co_firsttraceable = 176, .co_code = 192, .str_ascii_size = 40, .str_compact_size = 56,
     .fr_localsplus = 72, .obj_dict = RPROF_PY_MANAGED_312, .ht_cached_keys = 880},
    {.minor = 13, .chain = RPROF_PY_INTERP_FRAMES, .rt_autotss = 2160, .ts_frame = 72,
     .fr_code = 0, .fr_back = 8, .fr_ip = 56, .fr_owner = 70,
     .co_firstlineno = 68, .co_filename = 112, .co_qualname = 128, .co_linetable = 136,
     .co_firsttraceable = 184, .co_code = 200, .str_ascii_size = 40, .str_compact_size = 56,
     .fr_localsplus = 72, .obj_dict = RPROF_PY_MANAGED_313, .ht_cached_keys = 880,
     .values_at = 8,
     .debug = rprof_py_debug_313, .ndebug = RPROF_PY_NDEBUG(rprof_py_debug_313)},
    {.minor = 14, .chain = RPROF_PY_INTERP_FRAMES, .rt_autotss = 2336, .ts_frame = 72,
     .fr_code = 0, .fr_back = 8, .fr_ip = 56, .fr_owner = 74, .fr_code_tag = 3,
     .co_firstlineno = 68, .co_filename = 112, .co_qualname = 128, .co_linetable = 136,
     .co_firsttraceable = 192, .co_code = 208, .str_ascii_size = 40, .str_compact_size = 56,
     .debug = rprof_py_debug_314, .ndebug = RPROF_PY_NDEBUG(rprof_py_debug_314)},
};

#define RPROF_PY_MAX_TEXT 4

/* Everything the readers need; filled once at init, read-only afterwards. */
struct rprof_py_probe {
    struct rprof_py_layout layout;
    uintptr_t runtime; /* &_PyRuntime */
    uintptr_t code_type, unicode_type, bytes_type, frame_type;
    uint32_t version_hex;
    uint32_t ntext;
    uintptr_t text[RPROF_PY_MAX_TEXT][2]; /* [start, end) of the interpreter's executable text */
};

/* Matches the Rust RawFrame. addrq: byte offset into the bytecode, -1 unknown. */
struct rprof_raw_frame {
    uintptr_t code;
    int32_t addrq;
    uint32_t pad;
};

struct rprof_py_str {
    uintptr_t ptr;
    size_t len; /* code points */
    uint8_t kind; /* bytes per code point */
};

struct rprof_py_code_ref {
    uintptr_t key[4]; /* code, filename, qualname, linetable */
    struct rprof_py_str filename, qualname;
    uintptr_t linetable;
    size_t linetable_len;
    int32_t first_line;
};

typedef uintptr_t __attribute__((may_alias)) rprof_py_word;
typedef int32_t __attribute__((may_alias)) rprof_py_i32;
typedef uint32_t __attribute__((may_alias)) rprof_py_u32;

static inline uintptr_t rprof_py_ld(uintptr_t a) { return *(const rprof_py_word *)a; }
static inline int32_t rprof_py_ld_i32(uintptr_t a) { return *(const rprof_py_i32 *)a; }
static inline uint32_t rprof_py_ld_u32(uintptr_t a) { return *(const rprof_py_u32 *)a; }
static inline uint8_t rprof_py_ld_u8(uintptr_t a) { return *(const uint8_t *)a; }

/* Non-null, 8-aligned, canonical user-space (47-bit) address, not in the zero page. */
static inline int rprof_py_ptr_ok(uintptr_t a)
{
    return a >= 4096 && a < (1ull << 47) && (a & 7) == 0;
}

static inline int rprof_py_is_type(uintptr_t obj, uintptr_t type)
{
    return rprof_py_ptr_ok(obj) && rprof_py_ld(obj + RPROF_PY_OB_TYPE) == type;
}

static inline const struct rprof_py_layout *rprof_py_layout_for(uint32_t version_hex)
{
    if ((version_hex >> 24) != 3)
        return NULL;
    for (size_t i = 0; i < sizeof(rprof_py_layouts) / sizeof(rprof_py_layouts[0]); i++)
        if (rprof_py_layouts[i].minor == ((version_hex >> 16) & 0xff))
            return &rprof_py_layouts[i];
    return NULL;
}

/* Reasons rprof_py_probe_init() refuses an interpreter. */
enum rprof_py_refusal {
    RPROF_PY_OK = 0,
    RPROF_PY_UNSUPPORTED_VERSION,
    RPROF_PY_NO_DEBUG_OFFSETS,
    RPROF_PY_DEBUG_VERSION_MISMATCH,
    RPROF_PY_FREE_THREADED,
    RPROF_PY_DEBUG_OFFSET_MISMATCH, /* *bad_pos: the disagreeing position */
};

/*
 * Picks the layout for version_hex. For 3.13+ reads _Py_DebugOffsets at offset 0 of
 * _PyRuntime (static data, valid before Py_Initialize) and requires every value the probe uses
 * to equal the table: a debug, trace-refs or patched build would shift fields the debug offsets
 * do not describe (_co_firsttraceable, the TSS key), so disagreement means "do not probe".
 */
static inline enum rprof_py_refusal
rprof_py_probe_init(struct rprof_py_probe *p, uintptr_t runtime, uint32_t version_hex,
                    uintptr_t code_type, uintptr_t unicode_type, uintptr_t bytes_type,
                    uintptr_t frame_type, uint32_t *bad_pos)
{
    const struct rprof_py_layout *l = rprof_py_layout_for(version_hex);
    if (!l)
        return RPROF_PY_UNSUPPORTED_VERSION;
    if (l->debug) {
        if (rprof_py_ld(runtime) != RPROF_PY_DEBUG_COOKIE)
            return RPROF_PY_NO_DEBUG_OFFSETS;
        if (rprof_py_ld(runtime + RPROF_PY_DEBUG_VERSION) != version_hex)
            return RPROF_PY_DEBUG_VERSION_MISMATCH;
        if (rprof_py_ld(runtime + RPROF_PY_DEBUG_FREE_THREADED) != 0)
            return RPROF_PY_FREE_THREADED;
        for (uint32_t i = 0; i < l->ndebug; i++) {
            if (rprof_py_ld(runtime + l->debug[i].pos) != l->debug[i].value) {
                *bad_pos = l->debug[i].pos;
                return RPROF_PY_DEBUG_OFFSET_MISMATCH;
            }
        }
    }
    p->layout = *l;
    p->runtime = runtime;
    p->version_hex = version_hex;
    p->code_type = code_type;
    p->unicode_type = unicode_type;
    p->bytes_type = bytes_type;
    p->frame_type = frame_type;
    p->ntext = 0;
    return RPROF_PY_OK;
}

static inline int rprof_py_is_interpreter_pc(const struct rprof_py_probe *p, uintptr_t pc)
{
    for (uint32_t i = 0; i < p->ntext && i < RPROF_PY_MAX_TEXT; i++)
        if (pc >= p->text[i][0] && pc < p->text[i][1])
            return 1;
    return 0;
}

/*
 * The calling thread's own (gilstate-bound) thread state, 0 if it has none or Python is not
 * initialised (the key is created in Py_Initialize and deleted at finalisation). Not the GIL
 * holder: a thread that released the GIL keeps its frames, frozen at the call.
 */
static inline uintptr_t rprof_py_tstate(const struct rprof_py_probe *p)
{
    uintptr_t tss = p->runtime + p->layout.rt_autotss;
    if (rprof_py_ld_i32(tss) != 1)
        return 0;
    uintptr_t ts = (uintptr_t)pthread_getspecific((pthread_key_t)rprof_py_ld_u32(tss + RPROF_PY_TSS_KEY));
    return rprof_py_ptr_ok(ts) ? ts : 0;
}

static inline int rprof_py_is_code(const struct rprof_py_probe *p, uintptr_t code)
{
    return rprof_py_is_type(code, p->code_type);
}

/*
 * One frame of the chain: 1 and (*code, *addrq) if it should be recorded, 0 to skip it (shim or
 * entry frame, frame still being pushed, or a field that fails validation).
 */
static inline int rprof_py_frame(const struct rprof_py_probe *p, uintptr_t fp, uintptr_t *code,
                                 int32_t *addrq)
{
    const struct rprof_py_layout *l = &p->layout;
    uintptr_t co;
    if (l->chain == RPROF_PY_FRAME_OBJECTS) {
        if (!rprof_py_is_type(fp, p->frame_type))
            return 0;
        co = rprof_py_ld(fp + l->fr_code);
        if (!rprof_py_is_code(p, co))
            return 0;
        int32_t lasti = rprof_py_ld_i32(fp + l->fr_ip);
        uintptr_t bytecode = rprof_py_ld(co + l->co_code);
        if (!rprof_py_is_type(bytecode, p->bytes_type))
            return 0;
        uintptr_t nbytes = rprof_py_ld(bytecode + RPROF_PY_OB_SIZE);
        int64_t q = (int64_t)lasti * l->lasti_scale;
        /* f_lasti is -1 before the first instruction: the line is co_firstlineno. */
        *addrq = (lasti >= 0 && (uint64_t)q < nbytes && nbytes <= RPROF_PY_MAX_TABLE)
                     ? (int32_t)q
                     : -1;
        *code = co;
        return 1;
    }
    uint8_t owner = rprof_py_ld_u8(fp + l->fr_owner);
    if (owner >= RPROF_PY_OWNER_FIRST_SHIM)
        return 0;
    co = rprof_py_ld(fp + l->fr_code) & ~l->fr_code_tag;
    if (!rprof_py_is_code(p, co)) /* also None (3.13+ entry frames) and NULL (3.14 base frame) */
        return 0;
    uintptr_t units = rprof_py_ld(co + RPROF_PY_OB_SIZE);
    if (units == 0 || units > RPROF_PY_MAX_TABLE)
        return 0;
    int32_t first = rprof_py_ld_i32(co + l->co_firsttraceable);
    if (first < 0 || (uintptr_t)first > units)
        return 0;
    uintptr_t base = co + l->co_code;
    uintptr_t ip = rprof_py_ld(fp + l->fr_ip);
    /* Incomplete (CPython's _PyFrame_IsIncomplete): pushed, prologue not run yet. */
    if (owner != RPROF_PY_OWNER_GENERATOR && ip < base + 2 * (uintptr_t)first)
        return 0;
    if (ip < base || ip >= base + 2 * units)
        return 0;
    *code = co;
    *addrq = (int32_t)(ip - base);
    return 1;
}

/*
 * Walks the chain from `tstate` (innermost first) into out[0..cap). *n counts the frames
 * written so far and is updated only after each frame is stored, so that a caller that is
 * thrown out by a fault still knows how many entries are valid. Returns 1 if frames were left
 * out (cap reached, or the chain looked endless), else 0.
 */
static inline int rprof_py_walk(const struct rprof_py_probe *p, uintptr_t tstate,
                                struct rprof_raw_frame *out, size_t cap, volatile size_t *n)
{
    const struct rprof_py_layout *l = &p->layout;
    *n = 0;
    if (!tstate)
        return 0;
    uintptr_t holder = tstate;
    if (l->ts_cframe) {
        holder = rprof_py_ld(tstate + l->ts_cframe);
        if (!rprof_py_ptr_ok(holder))
            return 0;
    }
    uintptr_t fp = rprof_py_ld(holder + l->ts_frame);
    size_t written = 0, budget = cap + cap + RPROF_PY_MAX_SKIPPED;
    for (; fp; fp = rprof_py_ld(fp + l->fr_back)) {
        if (!rprof_py_ptr_ok(fp) || budget-- == 0)
            return 1;
        uintptr_t code;
        int32_t addrq;
        if (!rprof_py_frame(p, fp, &code, &addrq))
            continue;
        if (written == cap)
            return 1;
        out[written].code = code;
        out[written].addrq = addrq;
        out[written].pad = 0;
        written++;
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the entry is stored before it is counted */
        *n = written;
    }
    return 0;
}

/* A compact str (code names always are): data location, length and kind. */
static inline int rprof_py_str(const struct rprof_py_probe *p, uintptr_t s, struct rprof_py_str *out)
{
    if (!rprof_py_is_type(s, p->unicode_type))
        return 0;
    uint32_t state = rprof_py_ld_u32(s + RPROF_PY_STR_STATE);
    uint32_t kind = RPROF_PY_STR_KIND(state);
    uintptr_t len = rprof_py_ld(s + RPROF_PY_STR_LENGTH);
    if (!(state & RPROF_PY_STR_COMPACT) || (kind != 1 && kind != 2 && kind != 4) ||
        len > RPROF_PY_MAX_STR)
        return 0;
    if (state & RPROF_PY_STR_ASCII) {
        if (kind != 1)
            return 0;
        out->ptr = s + p->layout.str_ascii_size;
    } else {
        out->ptr = s + p->layout.str_compact_size;
    }
    out->len = len;
    out->kind = (uint8_t)kind;
    return 1;
}

static inline int rprof_py_code_ref(const struct rprof_py_probe *p, uintptr_t code,
                                    struct rprof_py_code_ref *out)
{
    const struct rprof_py_layout *l = &p->layout;
    if (!rprof_py_is_code(p, code))
        return 0;
    uintptr_t fname = rprof_py_ld(code + l->co_filename);
    uintptr_t qname = rprof_py_ld(code + l->co_qualname);
    uintptr_t table = rprof_py_ld(code + l->co_linetable);
    if (!rprof_py_str(p, fname, &out->filename) || !rprof_py_str(p, qname, &out->qualname) ||
        !rprof_py_is_type(table, p->bytes_type))
        return 0;
    uintptr_t table_len = rprof_py_ld(table + RPROF_PY_OB_SIZE);
    if (table_len > RPROF_PY_MAX_TABLE)
        return 0;
    out->key[0] = code;
    out->key[1] = fname;
    out->key[2] = qname;
    out->key[3] = table;
    out->linetable = table + RPROF_PY_BYTES_SVAL;
    out->linetable_len = table_len;
    out->first_line = rprof_py_ld_i32(code + l->co_firstlineno);
    return 1;
}

/* Does str `s` hold exactly the ASCII text lit[0..n)? */
static inline int rprof_py_str_is(const struct rprof_py_probe *p, uintptr_t s, const char *lit,
                                  size_t n)
{
    struct rprof_py_str v;
    if (!rprof_py_str(p, s, &v) || v.kind != 1 || v.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (rprof_py_ld_u8(v.ptr + i) != (uint8_t)lit[i])
            return 0;
    return 1;
}

/* Does str `s` end with the ASCII text lit[0..n)? */
static inline int rprof_py_str_ends(const struct rprof_py_probe *p, uintptr_t s, const char *lit,
                                    size_t n)
{
    struct rprof_py_str v;
    if (!rprof_py_str(p, s, &v) || v.kind != 1 || v.len < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (rprof_py_ld_u8(v.ptr + v.len - n + i) != (uint8_t)lit[i])
            return 0;
    return 1;
}

#define RPROF_PY_LIT(s) s, sizeof(s) - 1

/*
 * The value stored under the str key `name` in a dict's keys object, values taken from
 * `values` (split tables and instance values) when non-zero. 0 when absent or torn. Bounded:
 * at most RPROF_PY_MAX_ATTRS entries are looked at.
 */
static inline uintptr_t rprof_py_keys_get(const struct rprof_py_probe *p, uintptr_t keys,
                                          uintptr_t values, const char *name, size_t n)
{
    if (!rprof_py_ptr_ok(keys))
        return 0;
    uintptr_t nentries = rprof_py_ld(keys + 24), entries, esize, key_at, value_at;
    if (p->layout.obj_dict == RPROF_PY_DICT_AT_OFFSET) {
        /* 3.8-3.10: dk_size @8, dk_nentries @32, dk_indices @40 sized by dk_size. */
        uintptr_t size = rprof_py_ld(keys + 8);
        nentries = rprof_py_ld(keys + 32);
        if (size == 0 || size > (1ul << 30) || (size & (size - 1)))
            return 0;
        uintptr_t ix = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffu ? 4 : 8;
        entries = keys + 40 + size * ix;
        esize = 24, key_at = 8, value_at = 16;
    } else {
        /* 3.11+: dk_log2_index_bytes @9, dk_kind @10 (0 general: hash, key, value; else
         * unicode: key, value), dk_nentries @24, dk_indices @32. */
        uint8_t log2_index = rprof_py_ld_u8(keys + 9), kind = rprof_py_ld_u8(keys + 10);
        if (log2_index > 32 || kind > 2)
            return 0;
        entries = keys + 32 + (1ul << log2_index);
        if (kind == 0)
            esize = 24, key_at = 8, value_at = 16;
        else
            esize = 16, key_at = 0, value_at = 8;
    }
    if (nentries > RPROF_PY_MAX_ATTRS)
        return 0;
    for (uintptr_t i = 0; i < nentries; i++) {
        uintptr_t e = entries + i * esize;
        if (!rprof_py_str_is(p, rprof_py_ld(e + key_at), name, n))
            continue;
        return values ? rprof_py_ld(values + 8 * i) : rprof_py_ld(e + value_at);
    }
    return 0;
}

static inline uintptr_t rprof_py_dict_get(const struct rprof_py_probe *p, uintptr_t dict,
                                          const char *name, size_t n)
{
    if (!rprof_py_ptr_ok(dict))
        return 0;
    uintptr_t values = rprof_py_ld(dict + RPROF_PY_MA_VALUES);
    if (values && p->layout.values_at) /* 3.13 values[] follow a small header */
        values += p->layout.values_at;
    if (values && !rprof_py_ptr_ok(values))
        return 0;
    return rprof_py_keys_get(p, rprof_py_ld(dict + RPROF_PY_MA_KEYS), values, name, n);
}

/*
 * Attribute `name` of an instance of a plain (heap) Python class, as stored in its instance
 * attributes, not through the type (no descriptors, no __getattr__): what CPython's own
 * generic getattr finds there. 0 when absent or torn.
 */
static inline uintptr_t rprof_py_instance_attr(const struct rprof_py_probe *p, uintptr_t obj,
                                               const char *name, size_t n)
{
    const struct rprof_py_layout *l = &p->layout;
    if (!rprof_py_ptr_ok(obj))
        return 0;
    uintptr_t type = rprof_py_ld(obj + RPROF_PY_OB_TYPE);
    if (!rprof_py_ptr_ok(type))
        return 0;
    uintptr_t flags = rprof_py_ld(type + RPROF_PY_TP_FLAGS);
    if (l->obj_dict == RPROF_PY_DICT_AT_OFFSET || !(flags & RPROF_PY_TPFLAGS_MANAGED_DICT)) {
        intptr_t off = (intptr_t)rprof_py_ld(type + RPROF_PY_TP_DICTOFFSET);
        if (off <= 0 || off > 4096)
            return 0;
        return rprof_py_dict_get(p, rprof_py_ld(obj + (uintptr_t)off), name, n);
    }
    uintptr_t keys = rprof_py_ld(type + l->ht_cached_keys);
    uintptr_t word = rprof_py_ld(obj - 3 * sizeof(uintptr_t));
    switch (l->obj_dict) {
    case RPROF_PY_MANAGED_311: {
        uintptr_t values = rprof_py_ld(obj - 4 * sizeof(uintptr_t));
        if (values)
            return rprof_py_ptr_ok(values) ? rprof_py_keys_get(p, keys, values, name, n) : 0;
        return rprof_py_dict_get(p, word, name, n);
    }
    case RPROF_PY_MANAGED_312:
        if (word & 1) {
            uintptr_t values = word + 1;
            return rprof_py_ptr_ok(values) ? rprof_py_keys_get(p, keys, values, name, n) : 0;
        }
        return rprof_py_dict_get(p, word, name, n);
    case RPROF_PY_MANAGED_313:
        if (word)
            return rprof_py_dict_get(p, word, name, n);
        if (flags & RPROF_PY_TPFLAGS_INLINE_VALUES) {
            uintptr_t basic = rprof_py_ld(type + RPROF_PY_TP_BASICSIZE);
            if (basic < 16 || basic > 4096 || (basic & 7))
                return 0;
            uintptr_t values = obj + basic;
            if (!rprof_py_ld_u8(values + RPROF_PY_VALUES_VALID))
                return 0;
            return rprof_py_keys_get(p, keys, values + l->values_at, name, n);
        }
        return 0;
    }
    return 0;
}

/*
 * The threading.Thread object the calling thread runs, 0 if it runs none: threading starts
 * every thread in Thread._bootstrap(self), which calls _bootstrap_inner(self); both are the
 * outermost Python frames of the thread, and their first local is `self`.
 */
static inline uintptr_t rprof_py_thread_object(const struct rprof_py_probe *p, uintptr_t tstate)
{
    const struct rprof_py_layout *l = &p->layout;
    if (!tstate || !l->fr_localsplus)
        return 0;
    uintptr_t holder = tstate;
    if (l->ts_cframe) {
        holder = rprof_py_ld(tstate + l->ts_cframe);
        if (!rprof_py_ptr_ok(holder))
            return 0;
    }
    uintptr_t outer = 0, outer_code = 0;
    size_t budget = 4 * RPROF_PY_MAX_SKIPPED;
    for (uintptr_t fp = rprof_py_ld(holder + l->ts_frame); fp; fp = rprof_py_ld(fp + l->fr_back)) {
        if (!rprof_py_ptr_ok(fp) || budget-- == 0)
            return 0;
        uintptr_t code;
        int32_t addrq;
        if (rprof_py_frame(p, fp, &code, &addrq))
            outer = fp, outer_code = code;
    }
    if (!outer)
        return 0;
    uintptr_t qname = rprof_py_ld(outer_code + l->co_qualname);
    /* co_qualname from 3.11, co_name before. */
    if (!rprof_py_str_is(p, qname, RPROF_PY_LIT("Thread._bootstrap")) &&
        !rprof_py_str_is(p, qname, RPROF_PY_LIT("_bootstrap")))
        return 0;
    if (!rprof_py_str_ends(p, rprof_py_ld(outer_code + l->co_filename),
                           RPROF_PY_LIT("threading.py")))
        return 0;
    uintptr_t self = rprof_py_ld(outer + l->fr_localsplus);
    return rprof_py_ptr_ok(self) ? self : 0;
}

/* The calling thread's threading name (Thread._name) as a str, if it has one. */
static inline int rprof_py_thread_name(const struct rprof_py_probe *p, struct rprof_py_str *out)
{
    uintptr_t self = rprof_py_thread_object(p, rprof_py_tstate(p));
    if (!self)
        return 0;
    return rprof_py_str(p, rprof_py_instance_attr(p, self, RPROF_PY_LIT("_name")), out);
}

#endif /* RPROF_PROBE_H */
