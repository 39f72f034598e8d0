/* TEST FAKE, NOT A DRIVER. A stand-in for libnvidia-ml.so for machines without a GPU:
 * it implements exactly the NVML entry points rprof's writer calls through nvml-wrapper,
 * and reports scripted readings. nvml-wrapper resolves every NVML symbol when it loads
 * the library but tolerates missing ones (a call to one fails with FailedToLoadSymbol),
 * so nothing else is needed; nvmlSystemGetDriverVersion, which its init asks for, is a
 * stub returning NVML_ERROR_NOT_SUPPORTED.
 *
 * The script is a file named by FAKE_NVML_SCRIPT, key=value lines:
 *   devices=N             GPUs (default 1)
 *   name=TEXT             their name (default "Fake GPU"); device i is "TEXT i"
 *   total_mib=N           each device's memory (default 16384)
 *   busy_file=PATH        while this file exists every device is busy, else idle
 *   busy_util=N           utilisation while busy (percent, default 90)
 *   busy_mib=N            memory the profiled process holds while busy (default 1024)
 *   pid_file=PATH         the profiled process's pid (written there by the workload)
 *   other_mib=N           memory held by another process (pid 1) on each device, always
 *   process_util=0|1      whether nvmlDeviceGetProcessUtilization works (default 0)
 *   process_memory=0|1    whether nvmlDeviceGetComputeRunningProcesses works (default 1)
 *   init_error=N          nvmlInit_v2 fails with this NVML error code (default 0)
 * Idle devices report 0% and no memory for the process. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
};

typedef struct { unsigned gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
    unsigned pid;
    unsigned long long timeStamp;
    unsigned smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

static struct {
    int ready;
    unsigned devices, busy_util, process_util, process_memory;
    unsigned long long total, busy_bytes, other_bytes;
    int init_error;
    char name[64], busy_file[4096], pid_file[4096];
} S;

static void load_script(void) {
    S.devices = 1;
    S.busy_util = 90;
    S.process_memory = 1;
    S.total = 16384ull << 20;
    S.busy_bytes = 1024ull << 20;
    snprintf(S.name, sizeof S.name, "Fake GPU");
    const char *path = getenv("FAKE_NVML_SCRIPT");
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[4200];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *k = line, *v = eq + 1;
        unsigned long long n = strtoull(v, NULL, 10);
        if (!strcmp(k, "devices")) S.devices = (unsigned)n;
        else if (!strcmp(k, "name")) snprintf(S.name, sizeof S.name, "%s", v);
        else if (!strcmp(k, "total_mib")) S.total = n << 20;
        else if (!strcmp(k, "busy_file")) snprintf(S.busy_file, sizeof S.busy_file, "%s", v);
        else if (!strcmp(k, "busy_util")) S.busy_util = (unsigned)n;
        else if (!strcmp(k, "busy_mib")) S.busy_bytes = n << 20;
        else if (!strcmp(k, "pid_file")) snprintf(S.pid_file, sizeof S.pid_file, "%s", v);
        else if (!strcmp(k, "other_mib")) S.other_bytes = n << 20;
        else if (!strcmp(k, "process_util")) S.process_util = (unsigned)n;
        else if (!strcmp(k, "process_memory")) S.process_memory = (unsigned)n;
        else if (!strcmp(k, "init_error")) S.init_error = (int)n;
    }
    if (f)
        fclose(f);
}

static int busy(void) { return S.busy_file[0] && access(S.busy_file, F_OK) == 0; }

static unsigned profiled_pid(void) {
    FILE *f = S.pid_file[0] ? fopen(S.pid_file, "r") : NULL;
    unsigned pid = 0;
    if (f) {
        if (fscanf(f, "%u", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid;
}

/* Handles are 1 + the device's index. */
static int index_of(nvmlDevice_t d, unsigned *i) {
    uintptr_t v = (uintptr_t)d;
    if (!S.ready || v == 0 || v > S.devices)
        return 0;
    *i = (unsigned)(v - 1);
    return 1;
}

nvmlReturn_t nvmlInit_v2(void) {
    load_script();
    if (S.init_error)
        return S.init_error;
    S.ready = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    S.ready = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    default: return "Fake NVML error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length) {
    (void)version;
    (void)length;
    return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
    if (!S.ready) return NVML_ERROR_UNINITIALIZED;
    *count = S.devices;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device) {
    if (!S.ready) return NVML_ERROR_UNINITIALIZED;
    if (index >= S.devices) return NVML_ERROR_INVALID_ARGUMENT;
    *device = (nvmlDevice_t)(uintptr_t)(index + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned length) {
    unsigned i;
    if (!index_of(d, &i)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(name, length, "%s %u", S.name, i);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    unsigned i;
    if (!index_of(d, &i)) return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = busy() ? S.busy_util : 0;
    u->memory = u->gpu / 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    unsigned i;
    if (!index_of(d, &i)) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = S.total;
    m->reserved = 0;
    m->used = S.other_bytes + (busy() ? S.busy_bytes : 0);
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}

/* Lists pid 1 when other_mib is set, and the profiled pid while busy. */
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned *count,
                                                     nvmlProcessInfo_t *infos) {
    unsigned i;
    if (!index_of(d, &i)) return NVML_ERROR_INVALID_ARGUMENT;
    if (!S.process_memory) return NVML_ERROR_NOT_SUPPORTED;
    nvmlProcessInfo_t list[2];
    unsigned n = 0, pid = profiled_pid();
    if (S.other_bytes)
        list[n++] = (nvmlProcessInfo_t){1, S.other_bytes, 0xFFFFFFFF, 0xFFFFFFFF};
    if (pid && busy())
        list[n++] = (nvmlProcessInfo_t){pid, S.busy_bytes, 0xFFFFFFFF, 0xFFFFFFFF};
    if (!infos || *count < n) {
        *count = n;
        return n ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    }
    memcpy(infos, list, n * sizeof *list);
    *count = n;
    return NVML_SUCCESS;
}

/* One sample per call for the profiled pid, stamped now. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t d, nvmlProcessUtilizationSample_t *s,
                                             unsigned *count, unsigned long long last_seen) {
    unsigned i;
    (void)last_seen;
    if (!index_of(d, &i)) return NVML_ERROR_INVALID_ARGUMENT;
    if (!S.process_util) return NVML_ERROR_NOT_SUPPORTED;
    if (!s || *count < 1) {
        *count = 1;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s[0] = (nvmlProcessUtilizationSample_t){
        profiled_pid(), (unsigned long long)ts.tv_sec * 1000000ull + ts.tv_nsec / 1000,
        busy() ? S.busy_util : 0, 0, 0, 0};
    *count = 1;
    return NVML_SUCCESS;
}
