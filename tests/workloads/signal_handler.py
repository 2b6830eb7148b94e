"""signal_handler.py CTL: installs a Python handler for SIGUSR1 (CPython asks the kernel
for SA_ONSTACK and sets no alternate stack) and takes one SIGUSR1; after CTL/GO it takes
another and checks that the handler ran for both, prints PASS or FAIL and exits 0 or 1."""
import os
import signal
import sys
import time

handled = []


def on_usr1(signum, frame):
    handled.append(signum)


def main():
    go = os.path.join(sys.argv[1], "GO")
    signal.signal(signal.SIGUSR1, on_usr1)
    os.kill(os.getpid(), signal.SIGUSR1)
    print(f"READY {os.getpid()}", flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGUSR1)
    if handled != [signal.SIGUSR1, signal.SIGUSR1]:
        print(f"FAIL handled {handled!r}", flush=True)
        sys.exit(1)
    print(f"PASS handled={len(handled)}", flush=True)


main()
