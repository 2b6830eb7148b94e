"""sqlite_loop.py CTL DB: an SQLite session (rollback journal) inserting rows n = 1, 2, ...
into table t, one transaction per row that stays open for 20 ms, so a checkpoint finds it
mid-transaction with the database and its journal open. After CTL/GO it commits, checks the
table from its own connection (count = max = its counter, sum right), closes the database
and prints "PASS rows=N"; the test then checks the file with a fresh sqlite3."""
import os
import sqlite3
import sys
import time


def main():
    ctl, db = sys.argv[1], sys.argv[2]
    go = os.path.join(ctl, "GO")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, sq INTEGER, s TEXT)")
    n = 0
    while True:
        n += 1
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?, ?)", (n, n * n, f"row {n}"))
        if n == 3:
            print(f"READY {os.getpid()}", flush=True)
        time.sleep(0.02)
        con.execute("COMMIT")
        if n > 3 and os.path.exists(go):
            break
    count, top, total = con.execute("SELECT count(*), max(n), sum(sq) FROM t").fetchone()
    want = n * (n + 1) * (2 * n + 1) // 6
    con.close()
    if count != n or top != n or total != want:
        print(f"FAIL count={count} max={top} sum={total}, counter {n}", flush=True)
        sys.exit(1)
    print(f"PASS rows={n} pid={os.getpid()}", flush=True)


main()
