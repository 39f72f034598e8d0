#!/usr/bin/env python3
# prefork_server.py -- rprof test workload: a pre-fork HTTP server. The parent listens on
# 127.0.0.1 (an ephemeral port), forks `sys.argv[2]` workers (default 3) that accept on the
# shared socket, and writes `PORT WORKER-PIDS...` to the file `sys.argv[1]` once they run.
# GET /sum/N answers with sum(i*i % 7 for i in range(N)) (HOT-SERVE), computed in the
# worker; the body is the same whichever worker answers. On SIGTERM the parent's own
# handler stops the workers (SIGTERM, their default action), reaps them, prints how each
# ended in worker order and exits with status 3. Its standard output holds no pid or port,
# so it is the same in every run.
import os
import signal
import socket
import sys


def answer(path):
    if not path.startswith("/sum/"):
        return 404, b"not found\n"
    n = int(path[len("/sum/"):])
    total = sum(i * i % 7 for i in range(n))                    # HOT-SERVE
    return 200, f"sum {n} {total}\n".encode()


def serve(listener):
    while True:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            parts = request.split(b" ")
            status, body = answer(parts[1].decode() if len(parts) > 1 else "/")
            head = f"HTTP/1.0 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            head += f"Content-Length: {len(body)}\r\nContent-Type: text/plain\r\n\r\n"
            conn.sendall(head.encode() + body)


def main(port_file, workers):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                serve(listener)
            finally:
                os._exit(1)
        pids.append(pid)

    def stop(signum, frame):
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        for i, pid in enumerate(pids):
            _, status = os.waitpid(pid, 0)
            print(f"worker {i} ended: {os.waitstatus_to_exitcode(status)}", flush=True)
        print("server stopped", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, stop)
    with open(port_file + ".tmp", "w") as f:
        f.write(" ".join(map(str, [listener.getsockname()[1], *pids])))
    os.rename(port_file + ".tmp", port_file)
    print(f"serving with {workers} workers", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
