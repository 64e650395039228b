#!/usr/bin/env python3
"""Runs every benchmark of bench/README.md and writes the report.

    tools/bazel run //bench -- [--quick] [--only PART,...]
    python3 bench/run.py [--quick] [--only PART,...]

Installs the peers it needs with apt-get (as root), builds our programs with
g++ -O2 straight from include/supervise.hpp, runs every measurement with the
peers on 127.0.0.1, and writes bench/results/benchmarks.tsv (every trial),
docs/benchmarks.md and the plots in docs/img/ (bench/report.py, which can also
rewrite them from the TSV alone). Parts, in order: shutdown (with start-up,
fail-fast and the static builds), syscalls (system calls and page faults per
worker: counted, not timed), respawn, burst (K workers killed at once), idle
(with memory), storm, compile, serving.

Every process it starts runs in its own process group, is SIGKILLed when this
script dies (PR_SET_PDEATHSIG) and is reaped here: the script is a child
subreaper, so orphans come back to it, and on any error or Ctrl-C it kills and
reaps every descendant before it exits. Every wait is bounded.
"""

import argparse
import collections
import ctypes
import hashlib
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(BENCH)
HEADER = os.path.join(ROOT, "include", "supervise.hpp")
CXX = ["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
STATIC_FLAGS = ["-static", "-Wl,-z,now"]
STATIC_SIDES = {"ours-static": "idle_pool_static", "floor-static": "floor_pool_static"}
TSV = os.path.join(ROOT, "bench", "results", "benchmarks.tsv")

# Debian package for each program or file the run needs.
PACKAGES = {
    "/usr/sbin/kamailio": "kamailio",
    "/usr/sbin/nginx": "nginx-light",
    "/usr/bin/runsv": "runit",
    "/usr/bin/s6-supervise": "s6",
    "/usr/bin/supervisord": "supervisor",
    "/usr/bin/tini": "tini",
    "/usr/bin/gnuplot": "gnuplot-nox",
    "/usr/bin/wrk": "wrk",
    "/usr/include/boost/asio/signal_set.hpp": "libboost-dev",
    "/usr/include/uv.h": "libuv1-dev",
    "/usr/bin/clang++": "clang",
    "/usr/bin/strace": "strace",
    "/usr/bin/perf": "linux-perf",
}

PARTS = ("shutdown", "syscalls", "respawn", "burst", "idle", "storm", "compile", "serving")

# How much each mode repeats. Shutdown: trials per side and size, after one
# unreported warm-up trial (none at 1024, where a trial takes seconds).
MODES = {
    "quick": dict(sizes=(4, 64, 256), reps={4: 2, 64: 2, 256: 1}, warmup=0,
                  failfast_reps=2, respawn_reps=2, idle_s=10, storm_reps=1,
                  compile_reps=1, compile_warmup=0, http_s=2, http_reps=1,
                  hostile_reps=1, hostile_s=5,
                  syscall_sizes=(64, 256), quiet_wait_ms=200,
                  burst_sizes=(64,), burst_reps={64: 2}),
    "full": dict(sizes=(4, 64, 256, 1024), reps={4: 15, 64: 15, 256: 6, 1024: 3}, warmup=1,
                 failfast_reps=10, respawn_reps=10, idle_s=10, storm_reps=3,
                 compile_reps=3, compile_warmup=1, http_s=5, http_reps=3,
                 hostile_reps=2, hostile_s=15,
                 syscall_sizes=(64, 256, 1024), quiet_wait_ms=1000,
                 burst_sizes=(64, 1024), burst_reps={64: 10, 1024: 3}),
}

FAILFAST_SIZES = (4, 64)
RESPAWN_WORKERS = 4
MEMORY_WORKERS = 64
STORM_SIGNALS = 100000
STORM_WORKERS = 4
HTTP_WORKERS = 4
HTTP_CONNECTIONS = (16, 256, 1024)  # wrk's keep-alive connections
HOSTILE_IDLE = 2000  # connections that never send a byte
HOSTILE_SLOW = 50  # slowloris: one byte of an endless head a second
WAKEUP_CONNECTIONS = 1000  # idle keep-alive connections during the wake-up window
WAKEUP_S = 10
WATCHDOG_MS = 2000  # ours with the watchdog: workers beat every second
# Burst: K of N workers SIGKILLed at once, K = N/4 and K = N. supervise's
# restart intensity (max_restarts, default 5 in restart_period 10 s) would
# stop the pool after the fifth; the burst side allows this many.
BURST_MAX_RESTARTS = 1000000
# Respawns traced or counted per tree in the syscalls part.
COUNT_RESPAWNS = 3

KAMAILIO_CFG = """#!KAMAILIO
# Written by bench/run.py: one UDP address on loopback, no TCP/SCTP/TLS, no
# control socket; sl.so answers the readiness probe (SIP OPTIONS).
children={children}
listen=udp:127.0.0.1:{port}
disable_tcp=yes
disable_sctp=yes
auto_aliases=no
dns=no
rev_dns=no
mpath="{mpath}"
loadmodule "sl.so"
request_route {{
    if (method == "OPTIONS") {{
        sl_send_reply("200", "OK");
    }}
    exit;
}}
"""

NGINX_CFG = """# Written by bench/run.py.
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

SUPERVISORD_CFG = """; Written by bench/run.py.
[supervisord]
nodaemon=true
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
loglevel=warn

[program:w]
command={worker} {fifo}
numprocs={workers}
process_name=%(program_name)s_%(process_num)d
autorestart=true
startsecs=0
stdout_logfile=NONE
stderr_logfile=NONE
"""


T0 = time.monotonic()


def log(message):
    print("bench: [%4.0f s] %s" % (time.monotonic() - T0, message), file=sys.stderr, flush=True)


def output_of(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------------------
# Processes: subreaper, clean-up
# ---------------------------------------------------------------------------

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def in_child():
    """preexec_fn: own process group, SIGKILLed if this script dies."""
    os.setpgid(0, 0)
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def proc_table():
    """pid -> (ppid, state) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(name)] = (int(rest[1]), rest[0])
    return table


def descendants(root, table=None):
    table = table if table is not None else proc_table()
    children = collections.defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [root]
    while todo:
        for pid in children[todo.pop()]:
            found.append(pid)
            todo.append(pid)
    return found


def kill_everything():
    """SIGKILLs and reaps every descendant of this script (orphans included)."""
    for _ in range(100):
        left = descendants(os.getpid())
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not left:
                return
        time.sleep(0.02)


def on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


def start(cmd, logfile):
    with open(logfile, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=in_child)


def wait_tree(proc, procs, timeout):
    """Waits until proc's tree has `procs` processes (itself included), all
    sleeping; returns the seconds it took, or raises."""
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError("%s exited (%s) before it was ready"
                               % (proc.args[0], proc.returncode))
        table = proc_table()
        tree = [proc.pid] + descendants(proc.pid, table)
        if len(tree) == procs and all(table.get(p, (0, "?"))[1] == "S" for p in tree):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("%s: %d processes after %.0f s, expected %d"
                               % (proc.args[0], len(tree), timeout, procs))
        time.sleep(0.005)


def stop(proc, timeout=10):
    """SIGTERM, bounded wait, then SIGKILL to the group; reaps."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# ---------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------

def install_peers():
    missing = sorted({pkg for path, pkg in PACKAGES.items() if not os.path.exists(path)})
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit("bench: missing %s; run `apt-get install -y %s` as root, or run this as root"
                 % (", ".join(missing), " ".join(missing)))
    log("installing " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # nginx, kamailio and supervisor start themselves from their maintainer
    # scripts unless a policy forbids it: this run starts them only on loopback.
    policy = "/usr/sbin/policy-rc.d"
    own_policy = not os.path.exists(policy)
    if own_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + missing
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, timeout=900)
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True, timeout=900)
    finally:
        if own_policy:
            os.unlink(policy)


CACHE = os.path.join(os.path.expanduser("~"), ".cache", "supervise-bench")


def build(tmp):
    """Our programs, built with -O2 from the working tree. A build is kept in
    ~/.cache/supervise-bench under a hash of the compiler, the flags and every
    file it could read (the header, bench/, examples/), so a second run of the
    same tree does not compile again."""
    sources = {
        "idle_pool": "bench/idle_pool.cpp",
        "floor_pool": "bench/floor_pool.cpp",
        "ready_worker": "bench/ready_worker.cpp",
        "driver": "bench/shutdown_bench.cpp",
        "supervise_exec": "examples/exec/supervise_exec.cpp",
        "daemon": "examples/daemon/daemon.cpp",
        "asio": "examples/asio/asio_server.cpp",
        "libuv": "examples/libuv/libuv_server.cpp",
    }
    # Libraries a program links beyond libc (Boost.Asio is header-only).
    link = {"asio": ["-pthread"], "libuv": ["-luv"]}
    # The physical limit, for reference: the same two sides linked statically
    # and with every symbol bound at start (no lazy binding to do after a fork).
    static = {"idle_pool_static": "bench/idle_pool.cpp",
              "floor_pool_static": "bench/floor_pool.cpp"}
    digest = hashlib.sha256(output_of(["g++", "--version"]).encode() + " ".join(CXX).encode() +
                            " ".join(STATIC_FLAGS).encode())
    for top in ("include", "bench", "examples"):
        for folder, _, files in sorted(os.walk(os.path.join(ROOT, top))):
            for name in sorted(files):
                if name.endswith((".hpp", ".cpp", ".h")):
                    with open(os.path.join(folder, name), "rb") as f:
                        digest.update(name.encode() + f.read())
    # The event-loop examples are optional sides of the serving part: a tree
    # without them still measures everything else.
    for name in ("asio", "libuv"):
        if not os.path.exists(os.path.join(ROOT, sources[name])):
            log("serving: %s not in this tree, measured without it" % sources[name])
            del sources[name]
    out = os.path.join(CACHE, digest.hexdigest()[:16])
    binaries = {name: os.path.join(out, name) for name in list(sources) + list(static)}
    failed_static = os.path.join(out, "static-failed")
    if all(os.path.exists(binaries[name]) for name in sources) and (
            all(os.path.exists(binaries[name]) for name in static) or
            os.path.exists(failed_static)):
        log("programs from %s" % out)
        return {name: path for name, path in binaries.items() if os.path.exists(path)}
    log("building our programs with g++ -O2 (and the two static ones)")
    os.makedirs(out, exist_ok=True)
    jobs = []
    for name, src in list(sources.items()) + list(static.items()):
        flags = STATIC_FLAGS if name in static else []
        # The static links warn that getpwnam_r & co. need glibc's shared NSS
        # modules at run time (the pool never resolves a user here): kept out
        # of the log unless the build fails.
        jobs.append((name, subprocess.Popen(
            CXX + flags + ["-I", os.path.join(ROOT, "include"), "-I", ROOT,
                           os.path.join(ROOT, src), "-o", binaries[name] + ".part"] +
            link.get(name, []),
            stderr=subprocess.PIPE if name in static else None)))
    for name, job in jobs:
        err = job.communicate(timeout=600)[1]
        if job.returncode != 0:
            if name not in static:
                raise RuntimeError("build failed: " + " ".join(job.args))
            log("static build of %s failed, its side is left out:\n%s"
                % (name, (err or b"").decode(errors="replace")[-2000:]))
            with open(failed_static, "w") as f:
                f.write(name + "\n")
            continue
        os.rename(binaries[name] + ".part", binaries[name])
    return {name: path for name, path in binaries.items() if os.path.exists(path)}


def machine_info():
    """What the report says about the machine and the versions measured."""
    def first_line(cmd):
        return (output_of(cmd).splitlines() or ["?"])[0]

    def package(name):
        return output_of(["dpkg-query", "-W", "-f", "${Version}", name]) or "not installed"

    lscpu = output_of(["lscpu"])
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    u = os.uname()
    dirty = output_of(["git", "-C", ROOT, "status", "--porcelain", "--", "include", "bench",
                       "examples"])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": "%s %s %s" % (u.sysname, u.release, u.machine),
        "cpu": "%s, %d CPUs" % (model.group(1).strip() if model else "?", os.cpu_count()),
        "g++": first_line(["g++", "--version"]),
        "clang++": first_line(["clang++", "--version"]),
        "kamailio": "Debian kamailio " + package("kamailio"),
        "nginx": "Debian nginx-light " + package("nginx-light"),
        "runit": "Debian runit " + package("runit"),
        "s6": "Debian s6 " + package("s6"),
        "supervisor": "Debian supervisor " + package("supervisor"),
        "tini": "Debian tini " + package("tini"),
        "wrk": "Debian wrk " + package("wrk"),
        "boost": "Debian libboost-dev " + package("libboost-dev"),
        "supervise": "commit %s%s" % (output_of(["git", "-C", ROOT, "rev-parse", "--short",
                                                 "HEAD"]) or "?",
                                      " + local changes" if dirty else ""),
    }


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kamailio_module_dir():
    m = re.search(r"-L path\s+Modules search path \(default: ([^)]+)\)",
                  output_of(["kamailio", "-h"]))
    return m.group(1).strip() if m else "/usr/lib/x86_64-linux-gnu/kamailio/modules"


# ---------------------------------------------------------------------------
# The sides: how each peer is started, how many processes it has, how the
# driver (bench/shutdown_bench.cpp) knows it is ready and that a replacement is.
# ---------------------------------------------------------------------------

class Sides:
    def __init__(self, tmp, binaries):
        self.tmp = tmp
        self.bin = binaries
        self.count = 0

    def _dir(self, name):
        self.count += 1
        path = os.path.join(self.tmp, "%s-%d" % (name, self.count))
        os.makedirs(path)
        return path

    def _service_dir(self, name, fifo):
        d = self._dir(name)
        with open(os.path.join(d, "run"), "w") as f:
            f.write("#!/bin/sh\nexec %s %s\n" % (self.bin["ready_worker"], fifo))
        os.chmod(os.path.join(d, "run"), 0o755)
        return d

    def side(self, kind, n, watchdog=False, respawn=False, max_restarts=None):
        """(procs, readiness and replacement options, command) for the driver,
        or for a steady run here (`command` and `procs` only)."""
        fifo = os.path.join(self.tmp, "ready-%d.fifo" % (self.count + 1))
        if kind in ("ours", "ours-static", "ours-lean"):
            program = self.bin["idle_pool_static" if kind == "ours-static" else "idle_pool"]
            cmd = [program, "--workers", str(n), "--ready-fd", "3",
                   "--strategy", "one_for_one" if respawn else "shutdown_all"]
            if kind == "ours-lean":
                cmd.append("--stop-exits")
            if watchdog:
                cmd += ["--heartbeat-timeout", str(WATCHDOG_MS)]
            if max_restarts is not None:
                cmd += ["--max-restarts", str(max_restarts)]
            self.count += 1
            return n + 1, ["--ready-fd", "3", "--respawn-byte"], cmd
        if kind in ("floor", "floor-static"):
            program = self.bin["floor_pool_static" if kind == "floor-static" else "floor_pool"]
            self.count += 1
            return n + 1, ["--ready-fd", "3", "--respawn-byte"], [
                program, "--workers", str(n), "--ready-fd", "3"] + (
                    ["--respawn"] if respawn else [])
        if kind == "kamailio":
            d = self._dir("kamailio")
            port = free_port(socket.SOCK_DGRAM)
            cfg = os.path.join(d, "kamailio.cfg")
            with open(cfg, "w") as f:
                f.write(KAMAILIO_CFG.format(children=n, port=port, mpath=kamailio_module_dir()))
            # main + n UDP receivers + slow timer, timer, secondary timer
            return n + 4, ["--probe-sip-udp", "127.0.0.1:%d" % port], [
                "kamailio", "-DD", "-E", "-f", cfg, "-Y", d, "-P", os.path.join(d, "pid")]
        if kind == "nginx":
            d = self._dir("nginx")
            cfg = os.path.join(d, "nginx.conf")
            with open(cfg, "w") as f:
                f.write(NGINX_CFG.format(workers=n, dir=d, port=free_port()))
            return n + 1, ["--log-pipe-fd", "2", "--respawn-line", "start worker process"], [
                "nginx", "-e", "stderr", "-p", d, "-c", cfg]
        if kind == "exec":
            self.count += 1
            return n + 1, ["--ready-fifo", fifo, "--ready-bytes", str(n), "--respawn-byte"], [
                self.bin["supervise_exec"], "--workers", str(n), "--",
                self.bin["ready_worker"], fifo]
        if kind == "supervisord":
            d = self._dir("supervisord")
            cfg = os.path.join(d, "supervisord.conf")
            with open(cfg, "w") as f:
                f.write(SUPERVISORD_CFG.format(dir=d, worker=self.bin["ready_worker"],
                                               fifo=fifo, workers=n))
            return n + 1, ["--ready-fifo", fifo, "--ready-bytes", str(n), "--respawn-byte"], [
                "supervisord", "-n", "-c", cfg]
        if kind in ("runsv", "s6-supervise"):  # one supervised process each
            d = self._service_dir(kind, fifo)
            return 2, ["--ready-fifo", fifo, "--respawn-byte"], [kind, d]
        if kind == "tini":
            self.count += 1
            return 2, ["--ready-fifo", fifo], ["tini", "-s", "--", self.bin["ready_worker"], fifo]
        raise ValueError(kind)


# Row labels, in the order of the tables.
LABELS = {
    "ours": "supervise",
    "ours-static": "supervise, -static -Wl,-z,now",
    "ours-lean": "supervise, parked with wake_on::stop_exits",
    "floor-static": "floor, -static -Wl,-z,now",
    "ours-watchdog": "supervise, watchdog on",
    "exec": "supervise-exec",
    "floor": "floor",
    "kamailio": "Kamailio",
    "nginx": "nginx",
    "runsv": "runsv (runit)",
    "s6-supervise": "s6-supervise",
    "supervisord": "supervisord",
    "tini": "tini",
}


# ---------------------------------------------------------------------------
# Measurements through the driver: shutdown, start-up, fail-fast, respawn
# ---------------------------------------------------------------------------

def run_driver(binaries, tmp, scenario, sides, reps, warmup, ready_s, extra=(),
               quiet_wait_ms=1000):
    """sides: [(name, procs, options, command, settle_ms)]. Returns the
    driver's TSV rows as dicts and its failure messages."""
    cmd = [binaries["driver"], "--scenario", scenario, "--reps", str(reps),
           "--warmup", str(warmup), "--ready-timeout-ms", str(int(ready_s * 1000)),
           "--stop-timeout-ms", str(int(ready_s * 1000)), "--max-failures", "2",
           "--quiet-pct", "50", "--quiet-wait-ms", str(quiet_wait_ms)] + list(extra)
    for name, procs, options, command, settle in sides:
        cmd += ["--side", name, "--procs", str(procs)] + options
        cmd += ["--log", os.path.join(tmp, name + ".log")]
        if settle is not None:
            cmd += ["--settle-ms", str(settle)]
        cmd += ["--cmd"] + command + ["--end"]
    bound = (reps + warmup) * len(sides) * (2 * ready_s + 3) + 30
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=bound)
    lines = res.stdout.splitlines()
    rows = []
    if lines:
        head = lines[0].split("\t")
        rows = [dict(zip(head, line.split("\t"))) for line in lines[1:]]
    notes = [l for l in res.stderr.splitlines() if "failed" in l or "dropped" in l]
    for note in notes:
        log(note)
    return rows, notes


def us_to_ms(value):
    return float(value) / 1000.0


def part_shutdown(ctx):
    """SIGTERM -> tree gone (and start-up) at each size; fail-fast."""
    # The static builds run interleaved with the others; the report keeps them
    # out of the main tables (dynamic against dynamic) and in one of their own.
    static = [kind for kind, program in STATIC_SIDES.items() if program in ctx.bin]
    for n in ctx.mode["sizes"]:
        sides = []
        for kind in ("ours", "ours-lean", "kamailio", "nginx", "floor") + tuple(static):
            procs, opts, cmd = ctx.sides.side(kind, n)
            sides.append((kind, procs, strip_respawn(opts), cmd, None))
        reps = ctx.mode["reps"][n]
        ready_s = max(10.0, n * 0.04)
        log("shutdown and start-up, %d workers, %d trials per side" % (n, reps))
        rows, notes = run_driver(ctx.bin, ctx.tmp, "term", sides, reps,
                                 0 if n >= 1024 else ctx.mode["warmup"], ready_s,
                                 quiet_wait_ms=ctx.mode["quiet_wait_ms"])
        ctx.notes += [("shutdown", n, note) for note in notes]
        for r in rows:
            ctx.add("shutdown", r["side"], n, r["rep"], "tree_gone_ms", us_to_ms(r["tree_gone_us"]))
            ctx.add("shutdown", r["side"], n, r["rep"], "master_exit_ms",
                    us_to_ms(r["master_exit_us"]))
            ctx.add("shutdown", r["side"], n, r["rep"], "exit_code", r["exit_code"])
            ctx.add("shutdown", r["side"], n, r["rep"], "orphans", r["orphans_reaped"])
            ctx.add("startup", r["side"], n, r["rep"], "ready_ms", us_to_ms(r["ready_us"]))
            ctx.add("shutdown", r["side"], n, r["rep"], "busy_before_pct", r["busy_before_pct"])
            # The tree's CPU time when it was ready (schedstat), and its CPU
            # time and minor faults over its life (start, idle, stop), from the
            # master's wait4() rusage in the driver.
            if r.get("tree_cpu_us", "-") != "-":
                ctx.add("startstop", r["side"], n, r["rep"], "ready_cpu_ms",
                        us_to_ms(r["ready_cpu_us"]))
                ctx.add("startstop", r["side"], n, r["rep"], "tree_cpu_ms",
                        us_to_ms(r["tree_cpu_us"]))
                ctx.add("startstop", r["side"], n, r["rep"], "tree_minflt", r["tree_minflt"])
    for n in FAILFAST_SIZES:
        sides = []
        for kind in ("ours", "kamailio", "floor"):
            procs, opts, cmd = ctx.sides.side(kind, n)
            sides.append((kind, procs, strip_respawn(opts), cmd, None))
        log("fail-fast, %d workers" % n)
        rows, notes = run_driver(ctx.bin, ctx.tmp, "kill", sides, ctx.mode["failfast_reps"],
                                 ctx.mode["warmup"], 10.0,
                                 quiet_wait_ms=ctx.mode["quiet_wait_ms"])
        ctx.notes += [("failfast", n, note) for note in notes]
        for r in rows:
            ctx.add("failfast", r["side"], n, r["rep"], "tree_gone_ms",
                    us_to_ms(r["tree_gone_us"]))
            ctx.add("failfast", r["side"], n, r["rep"], "exit_code", r["exit_code"])


def strip_respawn(opts):
    out, skip = [], False
    for o in opts:
        if skip:
            skip = False
            continue
        if o == "--respawn-byte":
            continue
        if o in ("--respawn-line", "--log-pipe-fd"):
            skip = True
            continue
        out.append(o)
    return out


def part_respawn(ctx):
    n = RESPAWN_WORKERS
    sides = []
    for kind in ("ours", "exec", "nginx", "supervisord", "runsv", "s6-supervise", "floor"):
        procs, opts, cmd = ctx.sides.side(kind, n, respawn=True)
        # runit, s6 and supervisord hold back a restart of a process that ran
        # less than a second: every side gets a second of calm before the kill.
        sides.append((kind, procs, opts, cmd,
                      1100 if kind in ("supervisord", "runsv", "s6-supervise") else None))
    log("respawn, %d workers" % n)
    rows, notes = run_driver(ctx.bin, ctx.tmp, "respawn", sides, ctx.mode["respawn_reps"],
                             ctx.mode["warmup"], 10.0, ["--victim", "middle"],
                             quiet_wait_ms=ctx.mode["quiet_wait_ms"])
    ctx.notes += [("respawn", n, note) for note in notes]
    for r in rows:
        value = r["respawn_byte_us"] if r["respawn_byte_us"] != "-" else r["respawn_line_us"]
        ctx.add("respawn", r["side"], int(r["procs"]) - 1, r["rep"], "ready_ms", us_to_ms(value))


# ---------------------------------------------------------------------------
# Burst: K of N workers SIGKILLed at once, until all K replacements run
# ---------------------------------------------------------------------------

def part_burst(ctx):
    for n in ctx.mode["burst_sizes"]:
        reps = ctx.mode["burst_reps"][n]
        ready_s = max(10.0, n * 0.04)
        for k in (n // 4, n):
            sides = []
            for kind in ("ours", "floor"):
                procs, opts, cmd = ctx.sides.side(
                    kind, n, respawn=True,
                    max_restarts=BURST_MAX_RESTARTS if kind == "ours" else None)
                sides.append((kind, procs, opts, cmd, None))
            log("burst: %d of %d workers SIGKILLed at once, %d trials per side" % (k, n, reps))
            rows, notes = run_driver(ctx.bin, ctx.tmp, "burst", sides, reps,
                                     0 if n >= 1024 else ctx.mode["warmup"], ready_s,
                                     ["--burst", str(k)], quiet_wait_ms=ctx.mode["quiet_wait_ms"])
            ctx.notes += [("burst", n, "K=%d %s" % (k, note)) for note in notes]
            for r in rows:
                for metric, column in (("all_ms", "respawn_byte_us"),
                                       ("first_ms", "respawn_first_us"),
                                       ("kills_ms", "kills_us")):
                    ctx.add("burst", r["side"], n, r["rep"], "k%d_%s" % (k, metric),
                            us_to_ms(r[column]))
                ctx.add("burst", r["side"], n, r["rep"], "k%d_busy_before_pct" % k,
                        r["busy_before_pct"])


# ---------------------------------------------------------------------------
# Counts that grow with N: system calls (strace) and page faults (perf stat),
# so they do not depend on how busy the machine is
# ---------------------------------------------------------------------------

FAULT_EVENTS = "page-faults,minor-faults,major-faults"


def strace_counts(path):
    """syscall -> calls from `strace -c` (and "total")."""
    counts = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[-1].isidentifier() and fields[3].isdigit():
                counts[fields[-1]] = int(fields[3])
    return counts


def perf_counts(path):
    """event -> count from `perf stat -x,` (None for an event it could not count)."""
    counts = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) >= 3 and not line.startswith("#"):
                counts[fields[2]] = int(fields[0]) if fields[0].isdigit() else None
    return counts


def perf_works(tmp):
    out = os.path.join(tmp, "perf-check.txt")
    try:
        rc = subprocess.run(["perf", "stat", "-x,", "-o", out, "-e", FAULT_EVENTS, "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=30).returncode
        counts = perf_counts(out)
    except (OSError, subprocess.SubprocessError):
        return False
    return rc == 0 and all(counts.get(e) is not None for e in FAULT_EVENTS.split(","))


def start_ready(cmd, logfile):
    """Starts cmd with the write end of a new pipe as its descriptor 3 (the
    pools' --ready-fd 3); returns the process and the read end."""
    r, w = os.pipe()

    def child():
        in_child()
        if w == 3:
            os.set_inheritable(3, True)
        else:
            os.dup2(w, 3)  # inheritable
    try:
        with open(logfile, "ab") as out:
            # close_fds=False keeps the new descriptor 3; every other one of
            # this script is close-on-exec (PEP 446).
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    preexec_fn=child, close_fds=False)
    finally:
        os.close(w)
    return proc, r


def read_ready(fd, count, proc, timeout):
    """Reads `count` bytes from fd within timeout, or raises."""
    got, deadline = 0, time.monotonic() + timeout
    while got < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("%s: %d of %d ready bytes in %.0f s"
                               % (os.path.basename(proc.args[0]), got, count, timeout))
        readable, _, _ = select.select([fd], [], [], min(left, 0.2))
        if readable:
            data = os.read(fd, count - got)
            if not data:
                raise RuntimeError("%s closed its ready descriptor" % proc.args[0])
            got += len(data)
        elif proc.poll() is not None:
            raise RuntimeError("%s exited (%s)" % (proc.args[0], proc.returncode))


def children_of(pid):
    table = proc_table()
    return sorted(p for p, (ppid, _) in table.items() if ppid == pid)


def minflt(pid):
    """Minor page faults of one process so far (/proc/PID/stat field 10)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def tracer_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0



def attach_strace(ctx, pid, out, what):
    """`strace -c -o OUT -p PID`, returned once it is attached (TracerPid), within 10 s."""
    tracer = start(["strace", "-c", "-o", out, "-p", str(pid)], os.path.join(ctx.tmp, "strace.log"))
    deadline = time.monotonic() + 10
    while tracer_of(pid) != tracer.pid:
        if time.monotonic() > deadline or tracer.poll() is not None:
            raise RuntimeError("strace could not attach to %s" % what)
        time.sleep(0.01)
    return tracer

def count_start_stop(ctx, kind, n, wrapper, bound):
    """Starts `kind` with n workers under `wrapper` (strace or perf), waits until it
    is ready and idle, SIGTERMs the master and waits for the wrapper to end."""
    _, _, cmd = ctx.sides.side(kind, n)
    proc, ready = start_ready(wrapper + cmd, os.path.join(ctx.tmp, "counts.log"))
    try:
        read_ready(ready, 1, proc, bound)
        wait_tree(proc, n + 2, bound)
        master = children_of(proc.pid)[0]
        os.kill(master, signal.SIGTERM)
        proc.wait(bound)
    finally:
        os.close(ready)
        stop(proc)
        kill_everything()


def rusage_start_stop(ctx, kind, n, bound):
    """The fallback without perf: the tree's minor faults from wait4() on the
    master (itself and every child it reaped)."""
    _, _, cmd = ctx.sides.side(kind, n)
    proc, ready = start_ready(cmd, os.path.join(ctx.tmp, "counts.log"))
    try:
        read_ready(ready, 1, proc, bound)
        wait_tree(proc, n + 1, bound)
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = status
                return ru.ru_minflt
            time.sleep(0.01)
        raise RuntimeError("%s did not stop within %.0f s" % (kind, bound))
    finally:
        os.close(ready)
        stop(proc)
        kill_everything()


def count_respawns(ctx, kind, n, bound):
    """The master alone, for COUNT_RESPAWNS respawns one after the other (each a
    different slot's first death): its system calls (strace -c -p, attached around
    each respawn) and minor faults (/proc/PID/stat), and the replacement's faults."""
    _, _, cmd = ctx.sides.side(kind, n, respawn=True)
    proc, ready = start_ready(cmd, os.path.join(ctx.tmp, "respawn-counts.log"))
    tracer = None
    try:
        read_ready(ready, 1, proc, bound)
        wait_tree(proc, n + 1, bound)
        for rep in range(1, COUNT_RESPAWNS + 1):
            out = os.path.join(ctx.tmp, "strace-respawn-%s-%d-%d.txt" % (kind, n, rep))
            tracer = attach_strace(ctx, proc.pid, out, kind)
            time.sleep(0.1)  # the master back asleep in its wait after the attach
            before = children_of(proc.pid)
            victim = before[len(before) * rep // (COUNT_RESPAWNS + 1)]
            faults0 = minflt(proc.pid)
            os.kill(victim, signal.SIGKILL)
            read_ready(ready, 1, proc, bound)
            wait_tree(proc, n + 1, bound)
            time.sleep(0.05)
            faults1 = minflt(proc.pid)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
            tracer = None
            fresh = [p for p in children_of(proc.pid) if p not in before]
            for name, calls in strace_counts(out).items():
                ctx.add("syscalls", kind, n, rep, "respawn_master_" + name, calls)
            ctx.add("faults", kind, n, rep, "respawn_master_minflt", faults1 - faults0)
            if len(fresh) == 1:
                ctx.add("faults", kind, n, rep, "respawn_worker_minflt", minflt(fresh[0]))
    finally:
        os.close(ready)
        if tracer is not None:
            stop(tracer)
        stop(proc)
        kill_everything()


def count_burst(ctx, kind, n, bound):
    """The master alone while all n workers are SIGKILLed at once and replaced:
    its system calls (strace -c -p) and minor faults, for n deaths whose SIGCHLDs
    merge."""
    _, _, cmd = ctx.sides.side(kind, n, respawn=True,
                               max_restarts=BURST_MAX_RESTARTS if kind == "ours" else None)
    proc, ready = start_ready(cmd, os.path.join(ctx.tmp, "burst-counts.log"))
    tracer = None
    try:
        read_ready(ready, 1, proc, bound)
        wait_tree(proc, n + 1, bound)
        out = os.path.join(ctx.tmp, "strace-burst-%s-%d.txt" % (kind, n))
        tracer = attach_strace(ctx, proc.pid, out, kind)
        time.sleep(0.1)
        victims = children_of(proc.pid)
        faults0 = minflt(proc.pid)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        read_ready(ready, len(victims), proc, bound)
        wait_tree(proc, n + 1, bound)
        time.sleep(0.05)
        faults1 = minflt(proc.pid)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        tracer = None
        ctx.add("syscalls", kind, n, 1, "burst_deaths", len(victims))
        for name, calls in strace_counts(out).items():
            ctx.add("syscalls", kind, n, 1, "burst_master_" + name, calls)
        ctx.add("faults", kind, n, 1, "burst_master_minflt", faults1 - faults0)
    finally:
        os.close(ready)
        if tracer is not None:
            stop(tracer)
        stop(proc)
        kill_everything()


def part_syscalls(ctx):
    use_perf = perf_works(ctx.tmp)
    ctx.extra["faults_tool"] = "perf" if use_perf else "rusage"
    if not use_perf:
        log("perf stat cannot count page faults here: the tree's wait4() rusage instead")
    for n in ctx.mode["syscall_sizes"]:
        bound = max(60, n * 0.2)
        for kind in ("ours", "floor"):
            # (a) system calls of a start of N workers and their stop, every
            # process of the tree (strace -f, all calls).
            log("system calls, %s, start and stop of %d workers (strace -f)" % (kind, n))
            out = os.path.join(ctx.tmp, "strace-%s-%d.txt" % (kind, n))
            try:
                count_start_stop(ctx, kind, n, ["strace", "-f", "-c", "-o", out], bound)
                for name, calls in strace_counts(out).items():
                    ctx.add("syscalls", kind, n, 1, "start_stop_" + name, calls)
            except (RuntimeError, IndexError, OSError, subprocess.TimeoutExpired) as e:
                ctx.notes.append(("syscalls", n, "%s: %s" % (kind, e)))
            # (b) page faults of the same, every process of the tree.
            log("page faults, %s, start and stop of %d workers (%s)"
                % (kind, n, "perf stat" if use_perf else "wait4 rusage"))
            out = os.path.join(ctx.tmp, "perf-%s-%d.txt" % (kind, n))
            try:
                if use_perf:
                    count_start_stop(ctx, kind, n, ["perf", "stat", "-x,", "-o", out, "-e",
                                                    FAULT_EVENTS, "--"], bound)
                    for event, value in perf_counts(out).items():
                        ctx.add("faults", kind, n, 1,
                                "start_stop_" + event.replace("-", "_"), value)
                else:
                    ctx.add("faults", kind, n, 1, "start_stop_ru_minflt",
                            rusage_start_stop(ctx, kind, n, bound))
            except (RuntimeError, IndexError, OSError, subprocess.TimeoutExpired) as e:
                ctx.notes.append(("faults", n, "%s: %s" % (kind, e)))
            # (c) the master, one respawn at a time.
            log("system calls and page faults of the %s master for %d respawns, %d workers"
                % (kind, COUNT_RESPAWNS, n))
            try:
                count_respawns(ctx, kind, n, bound)
            except (RuntimeError, IndexError, OSError, subprocess.TimeoutExpired) as e:
                ctx.notes.append(("syscalls", n, "%s respawn: %s" % (kind, e)))
            # (d) at the largest size, the master while every worker dies at once.
            if n == max(ctx.mode["syscall_sizes"]):
                log("system calls and page faults of the %s master, all %d workers SIGKILLed "
                    "at once" % (kind, n))
                try:
                    count_burst(ctx, kind, n, bound)
                except (RuntimeError, IndexError, OSError, subprocess.TimeoutExpired) as e:
                    ctx.notes.append(("syscalls", n, "%s burst: %s" % (kind, e)))


# ---------------------------------------------------------------------------
# Steady state: idle cost and memory, every side running at once
# ---------------------------------------------------------------------------

def proc_status(pid):
    values = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = rest.strip()
    with open("/proc/%d/schedstat" % pid) as f:
        cpu_ns = int(f.read().split()[0])
    return int(values["voluntary_ctxt_switches"]), int(values["nonvoluntary_ctxt_switches"]), cpu_ns


def smaps_rollup(pid):
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                values[m.group(1)] = int(m.group(2))
    return values


def part_idle(ctx):
    n = MEMORY_WORKERS
    kinds = ("ours", "ours-watchdog", "exec", "floor", "nginx", "kamailio", "supervisord",
             "runsv", "s6-supervise", "tini")
    running = []
    try:
        for kind in kinds:
            procs, _, cmd = ctx.sides.side(kind.replace("-watchdog", ""), n,
                                            watchdog=kind.endswith("watchdog"))
            if kind in ("ours", "ours-watchdog", "floor"):
                cmd = [a for a in cmd if a not in ("--ready-fd", "3")]
            proc = start(cmd, os.path.join(ctx.tmp, kind + "-steady.log"))
            try:
                wait_tree(proc, procs, 30)
            except RuntimeError as e:
                ctx.notes.append(("idle", n, "%s: %s" % (kind, e)))
                log(str(e))
                stop(proc)
                continue
            running.append((kind, proc, procs))
        log("idle cost: %d s with %d sides running" % (ctx.mode["idle_s"], len(running)))
        time.sleep(1.0)
        before = {}
        for kind, proc, _ in running:
            workers = descendants(proc.pid)
            before[kind] = (proc_status(proc.pid), workers,
                            [proc_status(w) for w in workers])
        time.sleep(ctx.mode["idle_s"])
        for kind, proc, procs in running:
            n_workers = 1 if kind in ("runsv", "s6-supervise", "tini") else n
            (vol0, invol0, cpu0), workers, wstats = before[kind]
            vol1, invol1, cpu1 = proc_status(proc.pid)
            wvol = sum(proc_status(w)[0] - s[0] for w, s in zip(workers, wstats))
            ctx.add("idle", kind, n_workers, 1, "master_wakeups", vol1 - vol0 + invol1 - invol0)
            ctx.add("idle", kind, n_workers, 1, "master_cpu_ms", (cpu1 - cpu0) / 1e6)
            ctx.add("idle", kind, n_workers, 1, "workers_wakeups", wvol)
            ctx.add("idle", kind, n_workers, 1, "seconds", ctx.mode["idle_s"])
            mem = smaps_rollup(proc.pid)
            wmem = [smaps_rollup(w) for w in workers]
            ctx.add("memory", kind, n_workers, 1, "master_rss_kb", mem["Rss"])
            ctx.add("memory", kind, n_workers, 1, "master_pss_kb", mem["Pss"])
            ctx.add("memory", kind, n_workers, 1, "master_private_kb",
                    mem["Private_Clean"] + mem["Private_Dirty"])
            ctx.add("memory", kind, n_workers, 1, "worker_pss_kb",
                    sum(m["Pss"] for m in wmem) / max(1, len(wmem)))
    finally:
        for _, proc, _ in running:
            stop(proc)


# ---------------------------------------------------------------------------
# Signal storm
# ---------------------------------------------------------------------------

def part_storm(ctx):
    n = STORM_WORKERS
    for rep in range(1, ctx.mode["storm_reps"] + 1):
        for kind in ("ours", "nginx", "kamailio"):
            procs, _, cmd = ctx.sides.side(kind, n)
            cmd = [a for a in cmd if a not in ("--ready-fd", "3")]
            proc = start(cmd, os.path.join(ctx.tmp, kind + "-storm.log"))
            try:
                wait_tree(proc, procs, 30)
                time.sleep(0.2)
                t0 = time.monotonic()
                sent = 0
                for _ in range(STORM_SIGNALS):
                    try:
                        os.kill(proc.pid, signal.SIGUSR1)
                    except ProcessLookupError:
                        break
                    sent += 1
                t1 = time.monotonic()
                alive = proc.poll() is None
                if alive:
                    proc.send_signal(signal.SIGTERM)
                try:
                    status = proc.wait(30)
                except subprocess.TimeoutExpired:
                    status = None
                t2 = time.monotonic()
                gone = not descendants(os.getpid())
                ctx.add("storm", kind, n, rep, "sent", sent)
                ctx.add("storm", kind, n, rep, "storm_ms", (t1 - t0) * 1000)
                ctx.add("storm", kind, n, rep, "alive_after_storm", int(alive))
                ctx.add("storm", kind, n, rep, "term_to_exit_ms",
                        (t2 - t1) * 1000 if status is not None else -1)
                ctx.add("storm", kind, n, rep, "exit_code", status if status is not None else "-")
                ctx.add("storm", kind, n, rep, "tree_gone", int(gone))
            except RuntimeError as e:
                ctx.notes.append(("storm", n, "%s: %s" % (kind, e)))
            finally:
                stop(proc)
                kill_everything()


# ---------------------------------------------------------------------------
# Compile cost
# ---------------------------------------------------------------------------

def part_compile(ctx):
    includes = [l.strip() for l in open(HEADER) if re.match(r"\s*#\s*include\s*<", l)]
    files = {
        "std": "\n".join(includes) + "\n",
        "supervise": "#include <supervise.hpp>\n",
        "asio": "#include <boost/asio/io_context.hpp>\n#include <boost/asio/signal_set.hpp>\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = os.path.join(ctx.tmp, "compile_%s.cpp" % name)
        with open(paths[name], "w") as f:
            f.write(text)
    ctx.extra["std_includes"] = len(includes)
    compilers = [c for c in ("g++", "clang++") if shutil.which(c)]
    log("compile cost, %s" % ", ".join(compilers))
    # Rounds before 1 warm the caches and are not reported.
    for rep in range(1 - ctx.mode["compile_warmup"], ctx.mode["compile_reps"] + 1):
        for compiler in compilers:
            for name, path in paths.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run([compiler, "-std=c++17", "-fsyntax-only", "-I",
                                os.path.join(ROOT, "include"), path], check=True, timeout=300)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                if rep > 0:
                    ctx.add("compile", name, 0, rep, compiler + "_cpu_s", cpu)


# ---------------------------------------------------------------------------
# Serving: the example servers against nginx (throughput, a hostile crowd,
# wake-ups with idle keep-alive connections)
# ---------------------------------------------------------------------------

NGINX_SERVING_CFG = """# Written by bench/run.py.
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

# The example servers' flags for a steady run, beyond --workers and --listen: keep-alive
# connections may idle for longer than the wake-up window (the defaults are short on purpose).
SERVER_FLAGS = {
    "daemon": [],
    "asio": ["--idle-timeout", "60000"],
    "libuv": ["--idle-timeout", "60000"],
}


def serving_sides(ctx):
    return ["daemon", "nginx"] + [k for k in ("asio", "libuv") if k in ctx.bin]


def start_server(ctx, kind, n, tag):
    """(process, port) of a server with n workers, once it accepts connections."""
    port = free_port()
    if kind == "nginx":
        d = ctx.sides._dir("nginx-serving")
        cfg = os.path.join(d, "nginx.conf")
        with open(cfg, "w") as f:
            f.write(NGINX_SERVING_CFG.format(workers=n, dir=d, port=port))
        cmd = ["nginx", "-e", "stderr", "-p", d, "-c", cfg]
    else:
        cmd = [ctx.bin[kind], "--workers", str(n), "--listen", "127.0.0.1:%d" % port]
        cmd += SERVER_FLAGS[kind]
    proc = start(cmd, os.path.join(ctx.tmp, "%s-%s.log" % (kind, tag)))
    try:
        wait_tree(proc, n + 1, 30)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s does not accept on port %d" % (kind, port))
                time.sleep(0.01)
    except Exception:
        stop(proc)
        raise
    return proc, port


def part_serving(ctx):
    import serving
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    n = HTTP_WORKERS
    m = ctx.mode
    for rep in range(1, m["http_reps"] + 1):
        for connections in HTTP_CONNECTIONS:
            for kind in serving_sides(ctx):
                proc, port = start_server(ctx, kind, n, "wrk")
                try:
                    figures = serving.wrk(port, connections, m["http_s"])
                    for metric, value in figures.items():
                        ctx.add("serving-%d" % connections, kind, n, rep, metric, value)
                finally:
                    stop(proc)
    # The hostile crowd, and a probe beside it that times one request at a time.
    for rep in range(1, m["hostile_reps"] + 1):
        for kind in serving_sides(ctx):
            proc, port = start_server(ctx, kind, n, "hostile")
            try:
                with serving.HostileCrowd(port, HOSTILE_IDLE, HOSTILE_SLOW) as crowd:
                    time.sleep(2)  # the crowd's connections are open and queued or accepted
                    latencies, failures = serving.probe(port, m["hostile_s"])
                ctx.add("hostile", kind, n, rep, "probe_p50_ms", serving.percentile(latencies, 50))
                ctx.add("hostile", kind, n, rep, "probe_p99_ms", serving.percentile(latencies, 99))
                ctx.add("hostile", kind, n, rep, "probe_max_ms", max(latencies or [-1.0]))
                ctx.add("hostile", kind, n, rep, "probe_requests", len(latencies))
                ctx.add("hostile", kind, n, rep, "probe_failures", failures)
                ctx.add("hostile", kind, n, rep, "closed_by_server", crowd.closed_by_server)
            finally:
                stop(proc)
    # Wake-ups over a quiet window with idle keep-alive connections open.
    for kind in serving_sides(ctx):
        proc, port = start_server(ctx, kind, n, "wakeups")
        sockets = []
        try:
            sockets = serving.idle_keepalive(port, WAKEUP_CONNECTIONS)
            time.sleep(0.5)
            counts = serving.wakeups(proc.pid, WAKEUP_S)
            workers = sorted(v for pid, v in counts.items() if pid != proc.pid)
            ctx.add("wakeups", kind, n, 1, "master", counts.get(proc.pid, -1))
            ctx.add("wakeups", kind, n, 1, "worker_median", workers[len(workers) // 2]
                    if workers else -1)
            ctx.add("wakeups", kind, n, 1, "worker_max", workers[-1] if workers else -1)
            ctx.add("wakeups", kind, n, 1, "connections_kept", serving.still_alive(sockets))
        finally:
            for s in sockets:
                s.close()
            stop(proc)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

class Context:
    def __init__(self, mode, tmp, binaries):
        self.mode = mode
        self.tmp = tmp
        self.bin = binaries
        self.sides = Sides(tmp, binaries)
        self.rows = []
        self.notes = []
        self.extra = {}

    def add(self, measurement, side, workers, rep, metric, value):
        if isinstance(value, float):
            value = "%.3f" % value
        self.rows.append((measurement, side, str(workers), str(rep), metric, str(value)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 2 min)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts: " + ", ".join(PARTS))
    parser.add_argument("--no-report", action="store_true",
                        help="write the TSV only, not docs/benchmarks.md and the plots")
    parser.add_argument("--tsv", default=TSV, help="where the trials go (default: %(default)s)")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    for p in parts:
        if p not in PARTS:
            parser.error("unknown part " + p)
    mode_name = "quick" if args.quick else "full"

    # Also SIGINT: a shell starts background commands with it ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    if LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed")
    install_peers()
    info = machine_info()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="supervise-bench-")
    try:
        binaries = build(tmp)
        ctx = Context(MODES[mode_name], tmp, binaries)
        loads = []
        for part in parts:
            # A part that fails (a peer that will not start, a header that does
            # not compile in the middle of an edit) is noted; the others run.
            part_started, load0 = time.monotonic(), os.getloadavg()[0]
            try:
                globals()["part_" + part](ctx)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                log("part %s failed: %s" % (part, e))
                ctx.notes.append((part, 0, "part %s failed: %s" % (part, e)))
            kill_everything()
            loads.append("%s %.0f s, %.1f → %.1f" % (part, time.monotonic() - part_started,
                                                     load0, os.getloadavg()[0]))
        elapsed = time.monotonic() - started
        info["load"] = ("%.1f at the start, %.1f at the end (1-minute load average; other "
                        "programs included)" % (load_before, os.getloadavg()[0]))
        info["load per part"] = ("; ".join(loads) + " (each part's duration and the 1-minute load "
                         "average at its start and end)")
        os.makedirs(os.path.dirname(os.path.abspath(args.tsv)), exist_ok=True)
        with open(args.tsv, "w") as f:
            f.write("# mode=%s parts=%s seconds=%.0f std_includes=%s faults_tool=%s\n"
                    % (mode_name, ",".join(parts), elapsed, ctx.extra.get("std_includes", "-"),
                       ctx.extra.get("faults_tool", "-")))
            for key, value in info.items():
                f.write("# info\t%s\t%s\n" % (key, value))
            for measurement, n, note in ctx.notes:
                f.write("# note\t%s\t%s\t%s\n" % (measurement, n, note))
            f.write("measurement\tside\tworkers\trep\tmetric\tvalue\n")
            for row in ctx.rows:
                f.write("\t".join(row) + "\n")
        log("%s run took %.0f s; trials in %s" % (mode_name, elapsed, args.tsv))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        kill_everything()
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_report:
        sys.path.insert(0, BENCH)
        import report
        report.write(args.tsv, ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
