"""dict_loop.py CTL: keeps its state in a dict (ints, strings, a nested list, an object)
that grows every 20 ms; after CTL/GO it checks every entry against the formula it was built
with and that nothing was lost or duplicated, prints PASS or FAIL and exits 0 or 1."""
import os
import sys
import time


class Box:
    def __init__(self, n):
        self.n = n
        self.name = f"box-{n}"


def value(i):
    return (i * i, f"s{i}", [i, i + 1, {"half": i // 2}], Box(i))


def main():
    ctl = sys.argv[1]
    go = os.path.join(ctl, "GO")
    state = {}
    i = 0
    while True:
        state[i] = value(i)
        i += 1
        if i == 3:
            print(f"READY {os.getpid()}", flush=True)
        if i > 3 and os.path.exists(go):
            break
        time.sleep(0.02)
    for k in range(i):
        sq, s, lst, box = state[k]
        want = value(k)
        if (sq, s, lst) != want[:3] or (box.n, box.name) != (k, f"box-{k}"):
            print(f"FAIL entry {k} is {state[k]!r}", flush=True)
            sys.exit(1)
    if len(state) != i:
        print(f"FAIL {len(state)} entries, counter {i}", flush=True)
        sys.exit(1)
    print(f"PASS entries={i} pid={os.getpid()}", flush=True)


main()
