"""A GPU-shaped workload for the fake NVML (tests/native/fake_nvml.c): a busy phase, whose
line runs while the "GPU" is busy, then an idle phase, on a line of its own. The fake is
busy exactly while BUSY_FILE exists, so the phases are the ground truth, and each is
timed here, in the profiled run.

    python3 gpu_phases.py PID_FILE BUSY_FILE [SECONDS]
"""
import os
import sys
import time

pid_file, busy_file = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.6
with open(pid_file, "w") as f:
    f.write(str(os.getpid()))


def busy_phase():
    open(busy_file, "w").close()
    start = time.monotonic()
    end = time.process_time() + seconds
    while time.process_time() < end:  # GPU BUSY LINE
        pass
    os.unlink(busy_file)
    return time.monotonic() - start


def idle_phase():
    start = time.monotonic()
    end = time.process_time() + seconds
    while time.process_time() < end:  # GPU IDLE LINE
        pass
    return time.monotonic() - start


busy = busy_phase()
idle = idle_phase()
print(f"busy_s {busy:.3f} idle_s {idle:.3f}")
