"""A steady service for `make bench`'s trace-size figure in full mode: 2 threads, each
serving "requests" (building ~50 small dicts, strings and lists, pymalloc-sized, freed
at once) for 5 ms, then idle for 5 ms, for SECONDS (argv[1]) of wall time."""
import sys
import threading
import time


def serve(stop):
    while not stop.is_set():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.005:
            req = [{"id": i, "name": str(i), "vals": [i, i + 1.0]} for i in range(50)]
        time.sleep(0.005)
    return req


stop = threading.Event()
threads = [threading.Thread(target=serve, args=(stop,)) for _ in range(2)]
for t in threads:
    t.start()
time.sleep(float(sys.argv[1]))
stop.set()
for t in threads:
    t.join()
