"""Clients for bench/run.py's `serving` part: wrk's figures, a hostile crowd of idle and
slowloris connections, a probe that times one request at a time beside them, and the
wake-ups of a process tree read from /proc.

Nothing here starts a server; run.py does, and passes the port."""
import os
import re
import selectors
import socket
import threading
import time


def wrk(port, connections, seconds, threads=2):
    """wrk's figures for GET / with keep-alive: requests/s, p50 and p99 in ms, errors."""
    import subprocess
    res = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds,
                          "--latency", "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=seconds + 60)
    out = res.stdout

    def latency(pct):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\b" % pct, out, re.M)
        if not m:
            return -1.0
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(rps.group(1)) if rps else -1.0,
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


class HostileCrowd:
    """`idle` connections that never send a byte and `slow` slowloris connections that send
    one byte of an endless head every `interval` seconds. A connection the server closes is
    opened again at once (the slow reopener), so the crowd stays the same size for as long as
    it runs. Counts how many times the server closed one."""

    def __init__(self, port, idle, slow, interval=1.0):
        self.port, self.idle, self.slow, self.interval = port, idle, slow, interval
        self.closed_by_server = 0
        self.open_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def _connect(self, sel, kind):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            self.open_failures += 1
            s.close()
            return
        sel.register(s, selectors.EVENT_READ, kind)
        if kind == "slow":
            self._slow.append(s)

    def _run(self):
        sel = selectors.DefaultSelector()
        self._slow = []
        for _ in range(self.idle):
            self._connect(sel, "idle")
        for _ in range(self.slow):
            self._connect(sel, "slow")
        next_byte = time.monotonic() + self.interval
        sent_line = set()
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    continue  # an answer (a 408, a 400): the close follows
                sel.unregister(s)
                if s in self._slow:
                    self._slow.remove(s)
                sent_line.discard(s)
                s.close()
                self.closed_by_server += 1
                self._connect(sel, key.data)
            now = time.monotonic()
            if now >= next_byte:
                next_byte = now + self.interval
                for s in list(self._slow):
                    chunk = b"X" if s in sent_line else b"GET / HTTP/1.1\r\nX-Slow: "
                    try:
                        s.send(chunk)
                        sent_line.add(s)
                    except OSError:
                        pass
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


def probe(port, seconds, timeout=30.0):
    """One GET / at a time on a fresh connection, for `seconds`: each latency in ms, and the
    number that failed (no 200 within `timeout`)."""
    latencies, failures = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                reply = b""
                while b"\r\n" not in reply:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if reply.startswith(b"HTTP/1.1 200"):
                latencies.append((time.monotonic() - t0) * 1000.0)
            else:
                failures += 1
        except OSError:
            failures += 1
        time.sleep(0.01)
    return latencies, failures


def percentile(values, pct):
    if not values:
        return -1.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100.0 * (len(ordered) - 1))))]


def idle_keepalive(port, count):
    """`count` connections that each made one keep-alive request and now sit idle; the
    sockets, to be closed by the caller."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("the server closed a keep-alive connection at once")
            reply += chunk
        sockets.append(s)
    return sockets


def context_switches(pid):
    """voluntary + involuntary context switches of one process so far: each time it slept
    and was woken, or was preempted."""
    total = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def still_alive(sockets):
    """How many of `sockets` the server has not closed (a read would not see EOF)."""
    alive = 0
    for s in sockets:
        s.setblocking(False)
        try:
            alive += 1 if s.recv(1) else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def wakeups(master, seconds):
    """Context switches of the master and of each worker over `seconds` of quiet."""
    workers = children_of(master)
    before = {pid: context_switches(pid) for pid in [master] + workers}
    time.sleep(seconds)
    return {pid: context_switches(pid) - n for pid, n in before.items()
            if os.path.exists("/proc/%d" % pid)}
