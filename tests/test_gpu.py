"""GPU per line through NVML, on machines without a GPU: the writer loads a TEST FAKE
libnvidia-ml (tests/native/fake_nvml.c, not a driver) through RPROF_NVML_LIBRARY, whose
devices are busy (90%, 1 GiB held by the profiled process) exactly while the workload's
busy phase runs (it creates and removes the file the fake watches) and idle otherwise;
another process (pid 1) holds 512 MiB on each device throughout, which per-process memory
must leave out and device-wide memory must include. The line of the busy phase must get
the utilisation and the memory, the idle phase's line neither. Without NVML (a missing
library, none installed, NVML failing): GPU profiling is off with one info line, and the
report has no GPU columns."""
import ctypes
import subprocess

import pytest
from scalene.scalene_json import ScaleneJSONSchema

from harness import OWN, PYTHONS, build_c, file_lines, other_stderr, profiled, report, report_json, run_profiled

WORKLOAD = OWN / "gpu_phases.py"
BUSY_UTIL, BUSY_MIB, OTHER_MIB = 90, 1024, 512


def line_of(marker):
    return next(i for i, text in enumerate(WORKLOAD.read_text().splitlines(), 1) if marker in text)


BUSY_LINE, IDLE_LINE = line_of("# GPU BUSY LINE"), line_of("# GPU IDLE LINE")


@pytest.fixture(scope="module")
def fake_nvml():
    return build_c("fake_nvml", "-shared", "-fPIC")


def gpu_run(tmp_path, python, fake, **script):
    pid_file, busy_file = tmp_path / "pid", tmp_path / "busy"
    lines = {"busy_file": busy_file, "pid_file": pid_file, "busy_util": BUSY_UTIL, "busy_mib": BUSY_MIB,
             "other_mib": OTHER_MIB, **script}
    (tmp_path / "script").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    return profiled([python, WORKLOAD, pid_file, busy_file], tmp_path, RPROF_GPU="auto",
                    RPROF_NVML_LIBRARY=str(fake), FAKE_NVML_SCRIPT=str(tmp_path / "script"))


# Two set-ups, one per interpreter: two devices reporting this process's memory but
# device-wide utilisation; one device reporting per-process utilisation but device-wide
# memory.
SETUPS = [
    pytest.param(PYTHONS["system-3.11"], {"devices": 2, "process_util": 0, "process_memory": 1},
                 id="system-3.11-2dev-process-memory"),
    pytest.param(PYTHONS["pyenv-3.11.7"], {"devices": 1, "process_util": 1, "process_memory": 0},
                 id="pyenv-3.11.7-1dev-process-util"),
]


@pytest.mark.parametrize("python,script", SETUPS)
def test_busy_line_gets_the_gpu_and_idle_line_does_not(python, script, tmp_path, fake_nvml):
    run = gpu_run(tmp_path, python, fake_nvml, **script)
    devices = script["devices"]
    own_memory = script["process_memory"] == 1
    # What the fake reports while busy and while idle, summed over the devices.
    busy_mib = devices * (BUSY_MIB + (0 if own_memory else OTHER_MIB))
    idle_mib = devices * (0 if own_memory else OTHER_MIB)

    info = [l for l in other_stderr(run.proc.stderr) if "GPU profiling" in l]
    assert len(info) == 1 and "GPU profiling on" in info[0], run.proc.stderr
    d = run.data
    ScaleneJSONSchema.model_validate(d)
    assert d["gpu"] is True
    assert d["gpu_device"] == "GPU"
    g = d["rprof"]["gpu"]
    assert g["utilization_source"] == ("process" if script["process_util"] else "device")
    assert g["memory_source"] == ("process" if own_memory else "device")
    assert [dev["name"] for dev in g["devices"]] == [f"Fake GPU {i}" for i in range(devices)]
    for dev in g["devices"]:
        assert dev["peak_utilization_percent"] == BUSY_UTIL and dev["readings"] > 20, dev
        assert dev["peak_memory_mb"] == busy_mib / devices, dev

    lines = file_lines(d, WORKLOAD)
    busy, idle = lines[BUSY_LINE], lines.get(IDLE_LINE)
    assert idle is not None, "the idle line has no CPU samples: the run is too short to test"
    # The busy phase is all the GPU time there is. A reading at a phase's edge goes to the
    # sample nearest it, which can be across the edge (a reading every 10 ms, a sample
    # every few ms): one such reading is ~2% of a 0.6 s phase, and can set the idle line's
    # peak, which is why the idle line is held to its share and its average, not its peak.
    # Readings while the process was not running at all (descheduled on a loaded machine:
    # no thread had a sample near them) are charged to no line; the lines' shares are held
    # to the GPU time that was charged.
    charged = 100 - g["unattributed_percent"]
    assert charged > 50, g
    assert busy["n_gpu_percent"] >= 0.85 * charged, (busy, charged)
    assert idle["n_gpu_percent"] <= 0.05 * charged, (idle, charged)
    assert busy["n_gpu_peak_memory_mb"] == busy_mib, busy
    assert abs(busy["n_gpu_avg_memory_mb"] - busy_mib) <= 0.1 * busy_mib, busy
    assert abs(idle["n_gpu_avg_memory_mb"] - idle_mib) <= 0.05 * busy_mib, idle
    assert sum(rec["n_gpu_percent"] for f in d["files"].values() for rec in f["lines"]) <= charged + 0.01

    header = next(l for l in run.text.splitlines() if l.lstrip().startswith("Line"))
    assert "GPU%" in header and "GPUMiB" in header, run.text
    row = next(l for l in run.text.splitlines() if "# GPU BUSY LINE" in l or
               (l.split()[:1] == [str(BUSY_LINE)] and "while" in l))
    assert f"{busy['n_gpu_percent']:.1f}%" in row, row
    assert any(l.startswith("GPU ") and "Fake GPU 0" in l for l in run.text.splitlines()), run.text


def test_gpu_off_setting_loads_nothing(tmp_path, fake_nvml):
    (tmp_path / "script").write_text(f"busy_file={tmp_path / 'busy'}\npid_file={tmp_path / 'pid'}\n")
    run = profiled([PYTHONS["system-3.11"], WORKLOAD, tmp_path / "pid", tmp_path / "busy", "0.2"], tmp_path,
                   RPROF_GPU="off", RPROF_NVML_LIBRARY=str(fake_nvml), FAKE_NVML_SCRIPT=str(tmp_path / "script"))
    assert other_stderr(run.proc.stderr) == [], run.proc.stderr
    assert run.data["gpu"] is False and run.data["rprof"]["gpu"] is None
    assert "GPU%" not in run.text


def nvml_installed():
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        return True
    except OSError:
        return False


NO_NVML = [
    pytest.param({"RPROF_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"}, "cannot use NVML", id="missing-library"),
    pytest.param({}, "cannot use NVML (libnvidia-ml.so.1)", id="auto-none-installed",
                 marks=pytest.mark.skipif(nvml_installed(), reason="this machine has an NVML library")),
]


@pytest.mark.parametrize("env,why", NO_NVML)
def test_no_nvml_is_one_info_line_and_a_normal_report(env, why, tmp_path):
    code = "print(sum(i * i for i in range(300_000)))"
    python = PYTHONS["system-3.11"]
    plain = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    proc, trace = run_profiled([python, "-c", code], tmp_path, RPROF_GPU="auto", **env)
    assert (proc.returncode, proc.stdout) == (0, plain.stdout), proc.stderr
    lines = other_stderr(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("rprof: GPU profiling off") and why in lines[0], proc.stderr
    text = report(trace)
    assert text.returncode == 0 and "GPU%" not in text.stdout and "\nGPU " not in text.stdout, text.stdout


def test_nvml_error_is_one_info_line(tmp_path, fake_nvml):
    """nvmlInit fails (NVML_ERROR_DRIVER_NOT_LOADED, 9): GPU off, said once."""
    (tmp_path / "script").write_text("init_error=9\n")
    proc, trace = run_profiled([PYTHONS["pyenv-3.11.7"], "-c", "pass"], tmp_path, RPROF_GPU="on",
                               RPROF_NVML_LIBRARY=str(fake_nvml), FAKE_NVML_SCRIPT=str(tmp_path / "script"))
    assert proc.returncode == 0, proc.stderr
    lines = other_stderr(proc.stderr)
    assert len(lines) == 1 and "GPU profiling off" in lines[0] and "driver is not loaded" in lines[0], lines
    assert "GPU%" not in report(trace).stdout


def test_html_page_has_gpu_columns_and_timeline(tmp_path, fake_nvml):
    """The page, in Chromium: GPU% and GPU MiB columns whose busy-line cells match the JSON,
    and a GPU section with the devices and a utilisation timeline."""
    from browser import Browser

    run = gpu_run(tmp_path, PYTHONS["system-3.11"], fake_nvml, devices=1, process_util=0, process_memory=1)
    busy = file_lines(run.data, WORKLOAD)[BUSY_LINE]
    page = tmp_path / "report.html"
    r = report(run.trace, "--html", "-o", str(page))
    assert r.returncode == 0, r.stderr
    b = Browser()
    try:
        b.open(page)
        cells = b.js(f"""(() => {{
          const t = [...document.querySelectorAll("details.file")].find(
            (d) => d.querySelector(".path").textContent.endsWith("{WORKLOAD.name}")).querySelector("table.lines");
          const head = [...t.querySelectorAll("th")].map((th) => th.dataset.col);
          const row = [...t.querySelectorAll("tbody tr")].find(
            (tr) => tr.children[head.indexOf("Line")].textContent === "{BUSY_LINE}");
          return ["GPU%", "GPU MiB"].map((c) => head.indexOf(c) < 0 ? null : row.children[head.indexOf(c)].textContent);
        }})()""")
        assert cells[0] == f"{busy['n_gpu_percent']:.1f}%", cells
        # The page shows MiB with fewer decimals as they grow (1024, not 1024.0).
        assert abs(float(cells[1]) - busy["n_gpu_avg_memory_mb"]) <= 0.5, cells
        section = b.js("document.getElementById('gpu') && document.getElementById('gpu').textContent")
        assert section and "Fake GPU 0" in section, section
        points = b.js("document.querySelectorAll('#gpu-timeline polyline')[0].getAttribute('points').split(' ').length")
        assert points > 20, points
        assert b.errors == [], b.errors
    finally:
        b.close()


@pytest.mark.parametrize("env,said", [
    pytest.param({"RPROF_GPU": "auto"}, False, id="auto"),
    pytest.param({"RPROF_GPU": "on"}, True, id="on"),
    pytest.param({"RPROF_GPU": "auto", "RPROF_MODE": "gpu"}, True, id="mode-gpu"),
])
def test_native_process_says_the_verdict_only_when_asked(env, said, tmp_path, fake_nvml):
    """A process that is not Python (a shell, a launcher a run goes through) says the GPU
    verdict only when GPU profiling was asked for (RPROF_GPU=on, or gpu in RPROF_MODE); the
    trace has it either way."""
    (tmp_path / "script").write_text("devices=1\n")
    proc, trace = run_profiled(["/bin/sleep", "0.05"], tmp_path, RPROF_NVML_LIBRARY=str(fake_nvml),
                               FAKE_NVML_SCRIPT=str(tmp_path / "script"), **env)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in other_stderr(proc.stderr) if "GPU profiling" in l]
    assert len(lines) == (1 if said else 0), proc.stderr
    marks = [m["label"] for m in report_json(trace)["rprof"]["marks"]]
    assert any(m.startswith("gpu: GPU profiling on: 1 device (Fake GPU 0)") for m in marks), marks


def test_pprof_export_has_a_gpu_sample_type_go_tool_pprof_reads(tmp_path, fake_nvml):
    """The pprof export's gpu_time sample type, read by the real `go tool pprof`: the busy
    phase's function holds the GPU time the JSON charged to its line, the idle phase's
    function (almost) none."""
    import os
    import re
    import shutil

    go = shutil.which("go") or "/usr/bin/go"
    if not os.path.exists(go):
        pytest.fail("go is missing (scripts/test-env.sh installs Debian's golang-go)")
    run = gpu_run(tmp_path, PYTHONS["pyenv-3.11.7"], fake_nvml, devices=1, process_util=1, process_memory=1)
    g = run.data["rprof"]["gpu"]
    charged = 100 - g["unattributed_percent"]
    assert charged > 50, g
    out = tmp_path / "out.pprof"
    r = report(run.trace, "--pprof", str(out))
    assert r.returncode == 0, r.stderr

    def top(index, unit):
        p = subprocess.run([go, "tool", "pprof", "-top", f"-sample_index={index}", f"-unit={unit}", str(out)],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
        assert p.returncode == 0, p.stderr
        rows = {}
        for line in p.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)\w*\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)\w*\s+[\d.]+%\s+(.+)$", line)
            if m:
                rows[m.group(3).strip()] = (float(m.group(1)), float(m.group(2)))
        return p.stdout, rows

    # {function: (flat, cum)}: the phases' time is in their callees (clock_gettime), so
    # their inclusive (cum) GPU time is compared.
    text, rows = top("gpu_time", "ms")
    busy_ms = rows.get("busy_phase", (0.0, 0.0))[1]
    idle_ms = rows.get("idle_phase", (0.0, 0.0))[1]
    # gpu_time is GPU-busy ns of one fully busy GPU: each line's utilisation percent of
    # the run's GPU time, times the run's GPU busy time. The JSON says the same of every
    # line from the model; busy_phase's inclusive time in the export must agree with its
    # lines' sum to rounding (not with the loop's line alone: a loaded machine puts a few
    # of its samples on the `pass` beneath it, 2.4 points once).
    lines = file_lines(run.data, WORKLOAD)
    body = range(line_of("def busy_phase"), line_of("def idle_phase"))
    busy_lines = sum(lines[n]["n_gpu_percent"] for n in body if n in lines)
    assert lines[BUSY_LINE]["n_gpu_percent"] >= 0.85 * busy_lines, lines[BUSY_LINE]
    total_ms = sum(flat for flat, _ in rows.values())
    assert total_ms > 0, text
    assert busy_ms >= 0.85 * total_ms, text
    assert idle_ms <= 0.05 * total_ms, text
    share = 100 * busy_ms / total_ms * charged / 100
    assert abs(share - busy_lines) <= 1.0, (share, busy_lines, text)
