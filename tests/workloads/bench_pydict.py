"""bench_pydict.py CTL MIB: a Python process holding a dict of about MIB MiB (ints, strings,
tuples, small lists), the memory of a real interpreter for the compression rows of
bench/run. Prints READY; on each SIGUSR1 (taken with sigwait) checks every entry against the formula it was
built with and prints "PASS check=K pid=P entries=N" (or FAIL), then idles again."""
import os
import signal
import sys


def value(i):
    return (i * 7919, f"key-{i:08d}-{'x' * (i % 17)}", [i, i // 3, i % 11])


def main():
    target = int(sys.argv[2]) << 20
    state = {}
    # an entry takes about 300 bytes of heap (dict slot, tuple, str, list, ints)
    entries = max(1, target // 300)
    for i in range(entries):
        state[i] = value(i)
    checks = 0
    # taken by sigwait, not by a handler: nothing of the interpreter runs on delivery
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    print(f"READY {os.getpid()} entries={entries}", flush=True)
    while True:
        signal.sigwait({signal.SIGUSR1})
        checks += 1
        for k in range(entries):
            if state.get(k) != value(k):
                print(f"FAIL check={checks} pid={os.getpid()} entry {k}", flush=True)
                sys.exit(1)
        if len(state) != entries:
            print(f"FAIL check={checks} pid={os.getpid()} {len(state)} entries", flush=True)
            sys.exit(1)
        print(f"PASS check={checks} pid={os.getpid()} entries={entries}", flush=True)


main()
