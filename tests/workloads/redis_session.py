"""redis_session.py CTL PORT KEYS: a session of its own (this process leads it) with a
Redis server (redis-server, started here, listening on 127.0.0.1:PORT, its directory
CTL/redis, saving nothing) and this client, which holds one TCP connection to it. Over
that connection it names itself (CLIENT SETNAME) and fills the data set: KEYS strings, a
list and a hash. Prints "READY <pid> redis=<pid>". After CTL/GO it checks over the same
connection that the server still knows it by name (the connection is the one it had, not
a new one), that the data set is all there, and that a write works; prints PASS or FAIL."""
import os
import socket
import subprocess
import sys
import time


def command(*args):
    out = f"*{len(args)}\r\n"
    for a in args:
        a = str(a)
        out += f"${len(a.encode())}\r\n{a}\r\n"
    return out.encode()


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("the server closed the connection")
                self.buf += chunk
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value.decode()
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError(f"reply {line!r}")

    def call(self, *args):
        self.sock.sendall(command(*args))
        return self.reply()


def fail(what):
    print(f"FAIL {what}", flush=True)
    sys.exit(1)


def connect(port):
    deadline = time.time() + 30
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.time() > deadline:
                fail("redis-server does not answer")
            time.sleep(0.05)


def main():
    ctl, port, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # descriptors inherited from whoever started it are not the session's
    os.closerange(3, 65536)
    os.setsid()
    home = os.path.join(ctl, "redis")
    os.makedirs(home, exist_ok=True)
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", home,
         "--save", "", "--appendonly", "no", "--daemonize", "no",
         "--protected-mode", "no", "--set-proc-title", "no",
         "--logfile", os.path.join(home, "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = Conn(connect(port))
    c.call("CLIENT", "SETNAME", "holder")
    # pipelined, as a real loader would
    batch = b"".join(command("SET", f"key:{i}", f"value:{i}") for i in range(keys))
    c.sock.sendall(batch)
    for _ in range(keys):
        if c.reply() != "OK":
            fail("SET")
    c.call("RPUSH", "list", *range(100))
    c.call("HSET", "hash", "a", "1", "b", "2")
    print(f"READY {os.getpid()} redis={server.pid}", flush=True)
    go = os.path.join(ctl, "GO")
    while not os.path.exists(go):
        time.sleep(0.02)
    try:
        name = c.call("CLIENT", "GETNAME")
        if name != "holder":
            fail(f"the server does not know this connection: name {name!r}")
        if c.call("DBSIZE") != str(keys + 2):
            fail(f"DBSIZE {c.call('DBSIZE')}, not {keys + 2}")
        for i in (0, keys // 2, keys - 1):
            if c.call("GET", f"key:{i}") != f"value:{i}":
                fail(f"key:{i}")
        if c.call("LRANGE", "list", "0", "-1") != [str(i) for i in range(100)]:
            fail("list")
        if c.call("HGET", "hash", "b") != "2":
            fail("hash")
        if c.call("INCR", "after") != "1":
            fail("INCR after restart")
    except (EOFError, OSError, RuntimeError) as e:
        fail(f"held connection: {e}")
    print("PASS redis", flush=True)


if __name__ == "__main__":
    main()
