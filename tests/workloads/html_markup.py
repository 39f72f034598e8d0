#!/usr/bin/env python3
# html_markup.py -- the workload tests/test_html.py opens the HTML report of. Its hot lines
# hold markup that would run if the page ever put source text into HTML unescaped:
#   line 14: Python loop whose source holds a <script> element (most of the CPU time)
#   line 21: allocation whose source holds an <img onerror=...> (most of the memory)
#   line 26: a second thread's loop, cheaper, so lines and threads have different shares
import sys
import threading


def spin(n):
    acc = 0
    for i in range(n):
        acc += len("<script>window.rprofPwned = 1</script>") + i % 7
    return acc


def build(n):
    keep = []
    for _ in range(n):
        keep.append(["<img src=x onerror=window.rprofPwned=2>" * 200 for _ in range(20)])
    return sum(len(k) for k in keep)


def helper(n, out):
    out.append(sum(i * i % 13 for i in range(n)))


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    out = []
    t = threading.Thread(target=helper, args=(int(600_000 * scale), out), name="helper<b>")
    t.start()
    print("html_markup", spin(int(10_000_000 * scale)), build(int(300 * scale)))
    t.join()
    print(out[0])
