"""A small reader of rprof traces, written from docs/FORMAT.md alone: what the process tests
need from each trace (pid, parent, command line, run, how it ended), read independently
of the Rust reader."""
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

STRING, CPU, END, ALLOC, FREE, MARK, PROCESS, EXIT, SHORT_LIVED = 1, 5, 7, 8, 9, 11, 12, 13, 16
HOW = {0: "exited", 1: "signal", 2: "exec", 3: "killed"}


class Cursor:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def u8(self):
        self.pos += 1
        return self.data[self.pos - 1]

    def u(self):
        v = shift = 0
        while True:
            b = self.u8()
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    def i(self):
        v = self.u()
        return (v >> 1) ^ -(v & 1)

    def bytes(self):
        n = self.u()
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def text(self):
        return self.bytes().decode("utf-8", "replace")


@dataclass
class TraceInfo:
    path: Path
    pid: int
    ppid: int
    argv: list
    run: str = None
    root: bool = None
    ending: tuple = None          # ("exited", code) | ("signal", N) | ("exec", CMD) | ("killed", N)
    end_record: bool = False
    cpu_samples: int = 0
    alloc_samples: int = 0        # Alloc records and the blocks ShortLived records fold
    alloc_records: int = 0
    free_records: int = 0
    short_lived_records: int = 0
    marks: list = field(default_factory=list)


def read(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"RPROFTR\0", f"{path} is not an rprof trace"
    (n,) = struct.unpack_from("<I", data, 12)
    h = Cursor(data[16:16 + n])
    pid, ppid = h.u(), h.u()
    h.u(), h.u8(), h.u(), h.u(), h.u(), h.u(), h.i(), h.u()
    h.text(), h.text()
    argv = [h.text() for _ in range(h.u())]
    info = TraceInfo(Path(path), pid, ppid, argv)
    strings, pending = {}, []
    pos = 16 + n
    while pos + 12 <= len(data):
        magic, length, crc = data[pos:pos + 4], *struct.unpack_from("<II", data, pos + 4)
        payload = data[pos + 12:pos + 12 + length]
        assert magic == b"RPCK" and zlib.crc32(payload) == crc and len(payload) == length, f"{path}: bad chunk at {pos}"
        pos += 12 + length
        c = Cursor(payload)
        while c.pos < len(payload):
            tag, body = c.u8(), Cursor(c.bytes())
            if tag == STRING:
                sid = body.u()
                strings[sid] = body.text()
            elif tag == CPU:
                info.cpu_samples += 1
            elif tag == ALLOC:
                info.alloc_samples += 1
                info.alloc_records += 1
            elif tag == FREE:
                info.free_records += 1
            elif tag == SHORT_LIVED:
                body.u(), body.u(), body.u(), body.u(), body.u8()      # time, span, stack, size, domain
                info.alloc_samples += body.u()
                info.short_lived_records += 1
            elif tag == END:
                info.end_record = True
            elif tag in (MARK, PROCESS, EXIT):
                pending.append((tag, body))
    for tag, body in pending:     # string ids may be defined later in the file
        if tag == MARK:
            body.u()
            info.marks.append(strings[body.u()])
        elif tag == PROCESS:
            info.run, info.root = strings[body.u()], bool(body.u8())
        else:
            body.u()
            how = HOW[body.u8()]
            info.ending = (how, strings[body.u()] if how == "exec" else body.i())
    return info


def read_all(directory):
    """{pid: TraceInfo} of the traces in `directory`; each pid once."""
    infos = [read(p) for p in sorted(Path(directory).glob("*.trace"))]
    by_pid = {t.pid: t for t in infos}
    assert len(by_pid) == len(infos), [t.path.name for t in infos]
    return by_pid
