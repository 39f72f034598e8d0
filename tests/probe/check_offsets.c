/*
 * Checks shim/src/python/rprof_probe.h's row for the interpreter whose headers this is compiled
 * against (-DPy_BUILD_CORE, internal headers) against offsetof/sizeof of the real structs.
 * Prints every mismatch and exits 1 if there is any. Run by tests/probe/check_offsets.sh.
 *
 * Only the 3.11 branch runs on the development machine; the others are written against the
 * field names of their versions for CI images that have those interpreters.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stdio.h>

#if PY_VERSION_HEX >= 0x030B0000
/* 3.13's pycore_object.h (pulled in by pycore_dict.h) has unused parameters. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "internal/pycore_dict.h"
#pragma GCC diagnostic pop
#include "internal/pycore_frame.h"
#else
#include <frameobject.h>
#endif
#include "internal/pycore_runtime.h"

#include "rprof_probe.h"

static int failures, checks;

static void check(const char *what, unsigned long ours, unsigned long real)
{
    checks++;
    if (ours != real) {
        printf("MISMATCH %s: rprof_probe.h says %lu, headers say %lu\n", what, ours, real);
        failures++;
    }
}

#define CHECK(what, ours, real) check(what, (unsigned long)(ours), (unsigned long)(real))

int main(void)
{
    const struct rprof_py_layout *l = rprof_py_layout_for(PY_VERSION_HEX);
    if (!l) {
        printf("no layout for %s\n", PY_VERSION);
        return 1;
    }

    CHECK("ob_type", RPROF_PY_OB_TYPE, offsetof(PyObject, ob_type));
    CHECK("ob_size", RPROF_PY_OB_SIZE, offsetof(PyVarObject, ob_size));
    CHECK("PyBytesObject.ob_sval", RPROF_PY_BYTES_SVAL, offsetof(PyBytesObject, ob_sval));
    CHECK("PyASCIIObject.length", RPROF_PY_STR_LENGTH, offsetof(PyASCIIObject, length));
    CHECK("PyASCIIObject.state", RPROF_PY_STR_STATE, offsetof(PyASCIIObject, state));
    CHECK("sizeof(PyASCIIObject)", l->str_ascii_size, sizeof(PyASCIIObject));
    CHECK("sizeof(PyCompactUnicodeObject)", l->str_compact_size, sizeof(PyCompactUnicodeObject));
    {
        /* The state bit field, read back as the u32 the probe reads. */
        PyASCIIObject s;
        memset(&s, 0, sizeof s);
        s.state.kind = PyUnicode_4BYTE_KIND;
        s.state.compact = 1;
        uint32_t word;
        memcpy(&word, (char *)&s + RPROF_PY_STR_STATE, 4);
        CHECK("state.kind bits", RPROF_PY_STR_KIND(word), PyUnicode_4BYTE_KIND);
        CHECK("state.compact bit", word & RPROF_PY_STR_COMPACT, RPROF_PY_STR_COMPACT);
        memset(&s, 0, sizeof s);
        s.state.ascii = 1;
        memcpy(&word, (char *)&s + RPROF_PY_STR_STATE, 4);
        CHECK("state.ascii bit", word, RPROF_PY_STR_ASCII);
    }
    CHECK("Py_tss_t._is_initialized", 0, offsetof(Py_tss_t, _is_initialized));
    CHECK("Py_tss_t._key", RPROF_PY_TSS_KEY, offsetof(Py_tss_t, _key));
    CHECK("sizeof(Py_tss_t._key)", 4, sizeof(((Py_tss_t *)0)->_key));

    /* Thread names: the type and dict fields rprof_py_instance_attr reads. */
    CHECK("tp_basicsize", RPROF_PY_TP_BASICSIZE, offsetof(PyTypeObject, tp_basicsize));
    CHECK("tp_flags", RPROF_PY_TP_FLAGS, offsetof(PyTypeObject, tp_flags));
    CHECK("tp_dictoffset", RPROF_PY_TP_DICTOFFSET, offsetof(PyTypeObject, tp_dictoffset));
    CHECK("ma_keys", RPROF_PY_MA_KEYS, offsetof(PyDictObject, ma_keys));
    CHECK("ma_values", RPROF_PY_MA_VALUES, offsetof(PyDictObject, ma_values));
#if PY_VERSION_HEX >= 0x030B0000
    CHECK("Py_TPFLAGS_MANAGED_DICT", RPROF_PY_TPFLAGS_MANAGED_DICT, Py_TPFLAGS_MANAGED_DICT);
    CHECK("ht_cached_keys", l->ht_cached_keys, offsetof(PyHeapTypeObject, ht_cached_keys));
    CHECK("frame.localsplus", l->fr_localsplus, offsetof(_PyInterpreterFrame, localsplus));
    CHECK("dk_log2_index_bytes", 9, offsetof(PyDictKeysObject, dk_log2_index_bytes));
    CHECK("dk_kind", 10, offsetof(PyDictKeysObject, dk_kind));
    CHECK("dk_nentries", 24, offsetof(PyDictKeysObject, dk_nentries));
    CHECK("dk_indices", 32, offsetof(PyDictKeysObject, dk_indices));
    CHECK("sizeof(PyDictKeyEntry)", 24, sizeof(PyDictKeyEntry));
    CHECK("PyDictKeyEntry.me_key", 8, offsetof(PyDictKeyEntry, me_key));
    CHECK("PyDictKeyEntry.me_value", 16, offsetof(PyDictKeyEntry, me_value));
    CHECK("sizeof(PyDictUnicodeEntry)", 16, sizeof(PyDictUnicodeEntry));
    CHECK("PyDictUnicodeEntry.me_value", 8, offsetof(PyDictUnicodeEntry, me_value));
    CHECK("PyDictValues.values", l->values_at, offsetof(PyDictValues, values));
#if PY_VERSION_HEX >= 0x030D0000
    CHECK("Py_TPFLAGS_INLINE_VALUES", RPROF_PY_TPFLAGS_INLINE_VALUES, Py_TPFLAGS_INLINE_VALUES);
    CHECK("PyDictValues.valid", RPROF_PY_VALUES_VALID, offsetof(PyDictValues, valid));
    CHECK("obj_dict", l->obj_dict, RPROF_PY_MANAGED_313);
    CHECK("MANAGED_DICT_OFFSET", -3 * (long)sizeof(PyObject *), MANAGED_DICT_OFFSET);
#elif PY_VERSION_HEX >= 0x030C0000
    CHECK("obj_dict", l->obj_dict, RPROF_PY_MANAGED_312);
#else
    CHECK("obj_dict", l->obj_dict, RPROF_PY_MANAGED_311);
#endif
#else
    CHECK("f_localsplus", l->fr_localsplus, offsetof(PyFrameObject, f_localsplus));
    CHECK("obj_dict", l->obj_dict, RPROF_PY_DICT_AT_OFFSET);
#endif

    CHECK("co_firstlineno", l->co_firstlineno, offsetof(PyCodeObject, co_firstlineno));
    CHECK("co_filename", l->co_filename, offsetof(PyCodeObject, co_filename));

#if PY_VERSION_HEX >= 0x030B0000
    CHECK("chain", l->chain, RPROF_PY_INTERP_FRAMES);
    CHECK("co_qualname", l->co_qualname, offsetof(PyCodeObject, co_qualname));
    CHECK("co_linetable", l->co_linetable, offsetof(PyCodeObject, co_linetable));
    CHECK("_co_firsttraceable", l->co_firsttraceable, offsetof(PyCodeObject, _co_firsttraceable));
    CHECK("co_code_adaptive", l->co_code, offsetof(PyCodeObject, co_code_adaptive));
    CHECK("sizeof(_Py_CODEUNIT)", 2, sizeof(_Py_CODEUNIT));
    CHECK("frame.previous", l->fr_back, offsetof(_PyInterpreterFrame, previous));
    CHECK("frame.owner", l->fr_owner, offsetof(_PyInterpreterFrame, owner));
    CHECK("sizeof(frame.owner)", 1, sizeof(((_PyInterpreterFrame *)0)->owner));
    CHECK("FRAME_OWNED_BY_GENERATOR", RPROF_PY_OWNER_GENERATOR, FRAME_OWNED_BY_GENERATOR);
    CHECK("FRAME_OWNED_BY_FRAME_OBJECT < first shim owner", 1,
          FRAME_OWNED_BY_FRAME_OBJECT < RPROF_PY_OWNER_FIRST_SHIM);
#endif

#if PY_VERSION_HEX >= 0x030D0000 /* 3.13+ */
    CHECK("tstate.current_frame", l->ts_frame, offsetof(PyThreadState, current_frame));
    CHECK("ts_cframe unused", l->ts_cframe, 0);
    CHECK("frame.f_executable", l->fr_code, offsetof(_PyInterpreterFrame, f_executable));
    CHECK("frame.instr_ptr", l->fr_ip, offsetof(_PyInterpreterFrame, instr_ptr));
    CHECK("_PyRuntime.autoTSSkey", l->rt_autotss, offsetof(_PyRuntimeState, autoTSSkey));
    CHECK("FRAME_OWNED_BY_CSTACK", RPROF_PY_OWNER_FIRST_SHIM <= FRAME_OWNED_BY_CSTACK, 1);
    {
        /* Every debug-offset position the probe cross-checks, in the table's order, and the
         * value the interpreter stores there. */
        const size_t pos[] = {
            offsetof(_Py_DebugOffsets, thread_state.current_frame),
            offsetof(_Py_DebugOffsets, interpreter_frame.size),
            offsetof(_Py_DebugOffsets, interpreter_frame.previous),
            offsetof(_Py_DebugOffsets, interpreter_frame.executable),
            offsetof(_Py_DebugOffsets, interpreter_frame.instr_ptr),
            offsetof(_Py_DebugOffsets, interpreter_frame.owner),
            offsetof(_Py_DebugOffsets, code_object.filename),
            offsetof(_Py_DebugOffsets, code_object.qualname),
            offsetof(_Py_DebugOffsets, code_object.linetable),
            offsetof(_Py_DebugOffsets, code_object.firstlineno),
            offsetof(_Py_DebugOffsets, code_object.co_code_adaptive),
            offsetof(_Py_DebugOffsets, pyobject.ob_type),
            offsetof(_Py_DebugOffsets, bytes_object.ob_size),
            offsetof(_Py_DebugOffsets, bytes_object.ob_sval),
            offsetof(_Py_DebugOffsets, unicode_object.state),
            offsetof(_Py_DebugOffsets, unicode_object.length),
            offsetof(_Py_DebugOffsets, unicode_object.asciiobject_size),
        };
        const size_t val[] = {
            offsetof(PyThreadState, current_frame), sizeof(_PyInterpreterFrame),
            offsetof(_PyInterpreterFrame, previous), offsetof(_PyInterpreterFrame, f_executable),
            offsetof(_PyInterpreterFrame, instr_ptr), offsetof(_PyInterpreterFrame, owner),
            offsetof(PyCodeObject, co_filename), offsetof(PyCodeObject, co_qualname),
            offsetof(PyCodeObject, co_linetable), offsetof(PyCodeObject, co_firstlineno),
            offsetof(PyCodeObject, co_code_adaptive), offsetof(PyObject, ob_type),
            offsetof(PyVarObject, ob_size), offsetof(PyBytesObject, ob_sval),
            offsetof(PyASCIIObject, state), offsetof(PyASCIIObject, length),
            sizeof(PyASCIIObject),
        };
        CHECK("debug offsets checked", l->ndebug, sizeof(pos) / sizeof(pos[0]));
        for (uint32_t i = 0; i < l->ndebug && i < sizeof(pos) / sizeof(pos[0]); i++) {
            CHECK("_Py_DebugOffsets position", l->debug[i].pos, pos[i]);
            CHECK("_Py_DebugOffsets value", l->debug[i].value, val[i]);
        }
    }
#elif PY_VERSION_HEX >= 0x030C0000 /* 3.12 */
    CHECK("tstate.cframe", l->ts_cframe, offsetof(PyThreadState, cframe));
    CHECK("cframe.current_frame", l->ts_frame, offsetof(_PyCFrame, current_frame));
    CHECK("frame.f_code", l->fr_code, offsetof(_PyInterpreterFrame, f_code));
    CHECK("frame.prev_instr", l->fr_ip, offsetof(_PyInterpreterFrame, prev_instr));
    CHECK("_PyRuntime.autoTSSkey", l->rt_autotss, offsetof(_PyRuntimeState, autoTSSkey));
    CHECK("FRAME_OWNED_BY_CSTACK", RPROF_PY_OWNER_FIRST_SHIM, FRAME_OWNED_BY_CSTACK);
    CHECK("code tag", l->fr_code_tag, 0);
#elif PY_VERSION_HEX >= 0x030B0000 /* 3.11 */
    CHECK("tstate.cframe", l->ts_cframe, offsetof(PyThreadState, cframe));
    CHECK("cframe.current_frame", l->ts_frame, offsetof(_PyCFrame, current_frame));
    CHECK("frame.f_code", l->fr_code, offsetof(_PyInterpreterFrame, f_code));
    CHECK("frame.prev_instr", l->fr_ip, offsetof(_PyInterpreterFrame, prev_instr));
    CHECK("_PyRuntime.gilstate.autoTSSkey", l->rt_autotss,
          offsetof(_PyRuntimeState, gilstate.autoTSSkey));
    CHECK("code tag", l->fr_code_tag, 0);
#else /* 3.8-3.10 */
    CHECK("chain", l->chain, RPROF_PY_FRAME_OBJECTS);
    CHECK("co_name", l->co_qualname, offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030A0000
    CHECK("co_linetable", l->co_linetable, offsetof(PyCodeObject, co_linetable));
    CHECK("f_lasti scale", l->lasti_scale, sizeof(_Py_CODEUNIT));
#else
    CHECK("co_lnotab", l->co_linetable, offsetof(PyCodeObject, co_lnotab));
    CHECK("f_lasti scale", l->lasti_scale, 1);
#endif
    CHECK("co_code", l->co_code, offsetof(PyCodeObject, co_code));
    CHECK("tstate.frame", l->ts_frame, offsetof(PyThreadState, frame));
    CHECK("ts_cframe unused", l->ts_cframe, 0);
    CHECK("f_back", l->fr_back, offsetof(PyFrameObject, f_back));
    CHECK("f_code", l->fr_code, offsetof(PyFrameObject, f_code));
    CHECK("f_lasti", l->fr_ip, offsetof(PyFrameObject, f_lasti));
    CHECK("_PyRuntime.gilstate.autoTSSkey", l->rt_autotss,
          offsetof(_PyRuntimeState, gilstate.autoTSSkey));
#endif

    printf("%s: %d checks, %d mismatches\n", PY_VERSION, checks, failures);
    return failures != 0;
}
