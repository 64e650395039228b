#!/usr/bin/env python3
"""Benchmark supervise's master against Debian's Kamailio and a bare floor.

Builds the bench programs with -O2 straight from the header, writes a minimal
Kamailio configuration into a temporary directory, then runs, in one session,
the parts chosen with --only (default: all of them, in this order):

  term     (a) SIGTERM to the master -> master exited and its whole tree reaped
  kill     (b) SIGKILL to one worker -> master exited and its whole tree reaped
  compile  (c) cost of `-fsyntax-only` on a file that includes supervise.hpp,
               next to one that includes only the headers supervise.hpp
               itself includes
  respawn  (d) SIGKILL to one worker of a restarting master -> its replacement
               ready, for 4 and 64 workers (--respawn-workers); supervise
               (one_for_one) and the floor only, peers to come

(a), (b) and (d) are measured by bench/shutdown_bench (one driver for every
side), with the sides interleaved: supervise, Kamailio, floor, supervise, ...
The floor is bench/floor_pool.cpp: a bare master with no library, which shows
what ending (or forking) that many processes costs on this machine at all.

Prints a Markdown report on stdout (and writes it with --output). Needs root
only to install Kamailio when it is missing (apt-get), and Kamailio only for
(a) and (b). Standard library only.

  bench/compare_kamailio.py --only term,kill,compile \
      --output bench/results/kamailio-$(date +%F).md
  bench/compare_kamailio.py --only respawn --output bench/results/respawn-$(date +%F).md
"""

import argparse
import datetime
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
HEADER = os.path.join(ROOT, "include", "supervise.hpp")
CXXFLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]

# Kamailio 5.6 forks, besides the main ("attendant") process: `children`
# UDP receivers per UDP listen address, plus "slow timer", "timer" and the
# "secondary timer" (wtimer). TCP, SCTP and control modules are off.
KAMAILIO_EXTRA_PROCS = 3

# The parts, in the order they run.
PARTS = ("term", "kill", "compile", "respawn")

# (d): the string supervise's master logs once a restarted worker is ready
# ("worker I (pid P) is back, generation G"); every respawn trial starts a
# fresh pool, so the replacement is always generation 1.
SUPERVISE_BACK_LINE = "is back, generation 1"

# A trial whose machine was at least this busy (percent of all CPUs) during the
# settle time before t0, while the measured tree sat idle, had company.
NOISY_PCT = 10

KAMAILIO_CFG = """#!KAMAILIO
# Written by bench/compare_kamailio.py: the smallest tree comparable to a
# supervise pool. One UDP listen address on loopback, no TCP/SCTP/TLS, no
# control socket; sl.so only so that the readiness probe (SIP OPTIONS) gets
# an answer. Log level left at Kamailio's default.
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


def log(message):
    print("compare_kamailio: " + message, file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def output_of(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------

def ensure_kamailio():
    if shutil.which("kamailio"):
        return
    if os.geteuid() != 0:
        sys.exit("compare_kamailio: kamailio is not installed; run `apt-get install -y kamailio` "
                 "as root, or run this script as root")
    log("installing kamailio with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "kamailio"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
        run(install, env=env, stdout=subprocess.DEVNULL)
    if not shutil.which("kamailio"):
        sys.exit("compare_kamailio: kamailio still missing after apt-get")


def kamailio_module_dir():
    help_text = output_of(["kamailio", "-h"])
    match = re.search(r"-L path\s+Modules search path \(default: ([^)]+)\)", help_text)
    if match:
        return match.group(1).strip()
    return "/usr/lib/x86_64-linux-gnu/kamailio/modules"


def build(tmp):
    binaries = {}
    for name, sources in (("idle_pool", ["idle_pool.cpp"]),
                          ("floor_pool", ["floor_pool.cpp"]),
                          ("shutdown_bench", ["shutdown_bench.cpp"])):
        out = os.path.join(tmp, name)
        cmd = ["g++"] + CXXFLAGS + ["-I", os.path.join(ROOT, "include")]
        cmd += [os.path.join(BENCH, s) for s in sources] + ["-o", out]
        log("building " + name)
        run(cmd)
        binaries[name] = out
    return binaries


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy_fraction(seconds):
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return idle, sum(fields)
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    total = total1 - total0
    return 0.0 if total <= 0 else 1.0 - (idle1 - idle0) / total


def wait_until_idle(limit_s):
    """Waits (at most limit_s) until the CPUs were < 15 % busy for 2 s."""
    deadline = time.monotonic() + limit_s
    while True:
        busy = cpu_busy_fraction(2.0)
        if busy < 0.15:
            return busy
        if time.monotonic() >= deadline:
            log("machine still %.0f %% busy after %d s; measuring anyway" % (busy * 100, limit_s))
            return busy
        log("machine %.0f %% busy; waiting for it to calm down" % (busy * 100))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------
# (a), (b) and (d): the sides and the driver
# ---------------------------------------------------------------------------

def sides(binaries, tmp, workers, port):
    procs = str(workers + 1)
    kam_cfg = os.path.join(tmp, "kamailio.cfg")
    kam_cmd = ["kamailio", "-DD", "-E", "-f", kam_cfg, "-Y", tmp,
               "-P", os.path.join(tmp, "kamailio.pid")]
    return [
        ("supervise", ["--procs", procs, "--ready-fd", "3",
                       "--log", os.path.join(tmp, "supervise.log"),
                       "--cmd", binaries["idle_pool"], "--workers", str(workers),
                       "--ready-fd", "3", "--end"]),
        ("kamailio", ["--procs", procs, "--probe-sip-udp", "127.0.0.1:%d" % port,
                      "--log", os.path.join(tmp, "kamailio.log"),
                      "--cmd"] + kam_cmd + ["--end"]),
        ("floor", ["--procs", procs, "--ready-fd", "3",
                   "--log", os.path.join(tmp, "floor.log"),
                   "--cmd", binaries["floor_pool"], "--workers", str(workers),
                   "--ready-fd", "3", "--end"]),
    ]


def respawn_sides(binaries, tmp, workers):
    """The sides of (d) for one pool size: a master with `workers` workers that
    replaces a worker that dies, and tells the driver when the replacement is
    ready.

    The peers of a later issue (nginx, runsv, s6, supervisord) go here, one
    entry each: a foreground command with `workers` children and a replacement
    signal the driver understands (--respawn-byte: one byte on the --ready-fd
    pipe from the new worker; --respawn-line TEXT: a line on the --log-pipe-fd
    pipe, which may be 2 for a master that logs to stderr). respawn_table()
    compares every side with the floor of the same size."""
    procs = str(workers + 1)
    n = str(workers)
    pool = [binaries["idle_pool"], "--workers", n, "--ready-fd", "3", "--strategy", "one_for_one"]
    return [
        # Log silenced, as in (a) and (b): the mechanism alone.
        ("supervise-%d" % workers,
         ["--procs", procs, "--ready-fd", "3", "--respawn-byte",
          "--log", os.path.join(tmp, "supervise-%d.log" % workers),
          "--cmd"] + pool + ["--end"]),
        # Logging to a pipe with a reader, as to journald: also times the
        # master's own "is back" line.
        ("supervise-log-%d" % workers,
         ["--procs", procs, "--ready-fd", "3", "--respawn-byte",
          "--log-pipe-fd", "4", "--respawn-line", SUPERVISE_BACK_LINE,
          "--log", os.path.join(tmp, "supervise-log-%d.log" % workers),
          "--cmd"] + pool + ["--log-fd", "4", "--end"]),
        ("floor-%d" % workers,
         ["--procs", procs, "--ready-fd", "3", "--respawn-byte",
          "--log", os.path.join(tmp, "floor-%d.log" % workers),
          "--cmd", binaries["floor_pool"], "--workers", n, "--ready-fd", "3", "--respawn",
          "--end"]),
    ]


def run_driver(binaries, tmp, scenario, side_list, reps, args, extra=()):
    """Runs bench/shutdown_bench once for `scenario` with the sides interleaved;
    returns its command and its rows (dicts keyed by its TSV header)."""
    cmd = [binaries["shutdown_bench"], "--scenario", scenario, "--reps", str(reps),
           "--warmup", str(args.warmup), "--nice", str(args.nice)] + list(extra)
    if args.quiet_pct >= 0:
        cmd += ["--quiet-pct", str(args.quiet_pct), "--quiet-wait-ms", str(args.quiet_wait_ms)]
    for name, side_args in side_list:
        cmd += ["--side", name] + side_args
    log("running scenario %s, %d repetitions per side (interleaved)" % (scenario, reps))
    # Bounded from outside too: the driver bounds every wait itself, this is
    # the last line of defence.
    limit = 60 + (reps + args.warmup) * len(side_list) * (30 + args.quiet_wait_ms // 1000)
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        stdout, _ = driver.communicate(timeout=limit)
    except BaseException:  # the time limit, or Ctrl-C
        # SIGTERM, not SIGKILL: the driver then kills and reaps the tree it is
        # measuring (a SIGKILLed driver could leave a Kamailio tree behind).
        driver.send_signal(signal.SIGTERM)
        try:
            driver.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.communicate()
        raise
    rows = []
    lines = stdout.splitlines()
    header = lines[0].split("\t") if lines else []
    for line in lines[1:]:
        rows.append(dict(zip(header, line.split("\t"))))
    if driver.returncode != 0:
        for name in sorted(os.listdir(tmp)):
            if not name.endswith(".log"):
                continue
            with open(os.path.join(tmp, name), errors="replace") as f:
                tail = f.readlines()[-15:]
            log("last lines of %s:\n%s" % (name, "".join(tail)))
        sys.exit("compare_kamailio: shutdown_bench failed (exit status %d)" % driver.returncode)
    return cmd, header, rows


# ---------------------------------------------------------------------------
# (c)
# ---------------------------------------------------------------------------

def header_includes():
    """The #include lines of supervise.hpp itself, in order."""
    includes = []
    with open(HEADER) as f:
        for line in f:
            if re.match(r"\s*#\s*include\s*[<\"]", line):
                includes.append(line.strip())
    return includes


def measure_compile(tmp, runs):
    """Times three files: the header's own #include lines, the header, and
    bench/idle_pool.cpp (a real user: it instantiates a pool)."""
    baseline = os.path.join(tmp, "includes_only.cpp")
    with_header = os.path.join(tmp, "with_header.cpp")
    includes = header_includes()
    with open(baseline, "w") as f:
        f.write("// The standard and POSIX headers supervise.hpp includes, nothing else.\n")
        f.write("\n".join(includes) + "\n")
    with open(with_header, "w") as f:
        f.write("#include <supervise.hpp>\n")
    files = (("baseline", baseline), ("header", with_header),
             ("user", os.path.join(BENCH, "idle_pool.cpp")))
    results = []
    for compiler in ("g++", "clang++"):
        if not shutil.which(compiler):
            continue
        # CPU time (user + system of the compiler and its cc1plus/cc1) is the
        # measure: unlike wall time it hardly moves when other programs share
        # the machine. Wall time is kept for reference.
        times = {kind: {"cpu": [], "wall": []} for kind, _ in files}
        for i in range(runs + 1):  # the first round warms the page cache, unreported
            for kind, path in files:
                cmd = [compiler, "-std=c++17", "-fsyntax-only",
                       "-I", os.path.join(ROOT, "include"), path]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                run(cmd)
                elapsed = time.perf_counter() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                if i > 0:
                    times[kind]["cpu"].append(cpu)
                    times[kind]["wall"].append(elapsed)
        version = output_of([compiler, "--version"]).splitlines()[0]
        results.append((compiler, version, times))
    return len(includes), results


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def ms(value):
    return "%.2f ms" % value


def summarise(rows, side):
    mine = [r for r in rows if r["side"] == side]
    tree = [float(r["tree_gone_us"]) / 1000 for r in mine]
    master = [float(r["master_exit_us"]) / 1000 for r in mine]
    procs = sorted({int(r["procs"]) for r in mine})
    exits = {}
    for r in mine:
        key = ("signal %s" % r["signal"]) if r["signal"] != "0" else r["exit_code"]
        exits[key] = exits.get(key, 0) + 1
    orphans = sum(int(r["orphans_reaped"]) for r in mine)
    busy = [float(r["busy_before_pct"]) for r in mine]
    return {
        "busy": statistics.median(busy) if busy else float("nan"),
        "noisy": sum(1 for b in busy if b >= NOISY_PCT),
        "waits": sum(int(r.get("quiet_waits", "0")) for r in mine),
        "n": len(mine),
        "median": statistics.median(tree) if tree else float("nan"),
        "min": min(tree) if tree else float("nan"),
        "max": max(tree) if tree else float("nan"),
        "master": statistics.median(master) if master else float("nan"),
        "procs": "/".join(str(p) for p in procs),
        "exits": ", ".join("%s (%d/%d)" % (k, v, len(mine)) for k, v in sorted(exits.items())),
        "orphans": orphans,
    }


def shutdown_table(rows, workers):
    kam_children = workers - KAMAILIO_EXTRA_PROCS
    labels = {
        "supervise": "supervise (bench/idle_pool)",
        "kamailio": "Kamailio (children=%d)" % kam_children,
        "floor": "floor (bench/floor_pool)",
    }
    out = ["| side | processes at t0 | runs | tree gone: median | min – max "
           "| master exit: median | master exit status | orphans reaped "
           "| machine busy before t0: median (runs ≥ %d %%) |" % NOISY_PCT,
           "|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for side in ("supervise", "kamailio", "floor"):
        s = summarise(rows, side)
        summary[side] = s
        out.append("| %s | %s | %d | %s | %s – %s | %s | %s | %d | %.0f %% (%d) |" % (
            labels[side], s["procs"], s["n"], ms(s["median"]), ms(s["min"]).replace(" ms", ""),
            ms(s["max"]), ms(s["master"]), s["exits"], s["orphans"], s["busy"], s["noisy"]))
    ours, kam, floor = summary["supervise"], summary["kamailio"], summary["floor"]
    out.append("")
    waits = sum(v["waits"] for v in summary.values())
    if waits:
        out.append("Waiting for a quiet machine took %d extra settle period(s) in all." % waits)
        out.append("")
    out.append("Ratio of medians supervise / Kamailio: **%.2f**; supervise / floor: %.2f; "
               "Kamailio / floor: %.2f." % (ours["median"] / kam["median"],
                                          ours["median"] / floor["median"],
                                          kam["median"] / floor["median"]))
    out.append("Median of the per-repetition ratios (each pair ran back to back, so slow drifts "
               "of the machine's load cancel): supervise / Kamailio %s; supervise / floor %s."
               % (paired_ratio(rows, "supervise", "kamailio"),
                  paired_ratio(rows, "supervise", "floor")))
    return "\n".join(out)


def paired_ratio(rows, a, b, key="tree_gone_us", key_a=None):
    """Median of a/b over the repetitions where both ran; a's value is read
    from key_a when given (another column of the same trial)."""
    by_rep = {}
    for r in rows:
        if r[key] != "-":
            by_rep.setdefault(r["rep"], {})[r["side"]] = float(r[key])
        if key_a and r["side"] == a and r[key_a] != "-":
            by_rep.setdefault(r["rep"], {})[a] = float(r[key_a])
    ratios = [v[a] / v[b] for v in by_rep.values() if a in v and b in v and v[b] > 0]
    if not ratios:
        return "-"
    return "%.2f (%d pairs, middle half %.2f – %.2f)" % (
        statistics.median(ratios), len(ratios), *quartiles(ratios))


RESPAWN_LABELS = {
    "supervise": "supervise (idle_pool, one_for_one, log off)",
    "supervise-log": "supervise, logging to a pipe",
    "floor": "floor (floor_pool --respawn)",
}


def respawn_table(rows, sizes):
    """(d): one row per side and size, then each supervise side / floor."""
    def spread(values):
        if not values:
            return "-", "-"
        return ms(statistics.median(values)), "%s – %s" % (
            ms(min(values)).replace(" ms", ""), ms(max(values)))

    def column(mine, key):
        return [float(r[key]) / 1000 for r in mine if r[key] != "-"]

    out = ["| workers | side | runs | replacement ready (its byte): median | min – max "
           "| master logged \"is back\": median | min – max | killed: fork-order position "
           "| master exit status at the end | machine busy before t0: median (runs ≥ %d %%) |"
           % NOISY_PCT,
           "|---|---|---|---|---|---|---|---|---|---|"]
    medians = {}
    waits = 0
    for workers in sizes:
        for kind in RESPAWN_LABELS:
            name = "%s-%d" % (kind, workers)
            mine = [r for r in rows if r["side"] == name]
            byte = column(mine, "respawn_byte_us")
            line = column(mine, "respawn_line_us")
            busy = [float(r["busy_before_pct"]) for r in mine]
            waits += sum(int(r["quiet_waits"]) for r in mine)
            exits = {}
            for r in mine:
                key = ("signal %s" % r["signal"]) if r["signal"] != "0" else r["exit_code"]
                exits[key] = exits.get(key, 0) + 1
            victims = sorted({r["victim"] for r in mine})
            medians[name] = statistics.median(byte) if byte else float("nan")
            medians[name + "/line"] = statistics.median(line) if line else float("nan")
            out.append("| %d | %s | %d | %s | %s | %s | %s | %s of %d | %s | %.0f %% (%d) |" % (
                workers, RESPAWN_LABELS[kind], len(mine), *spread(byte), *spread(line),
                "/".join(victims), workers,
                ", ".join("%s (%d/%d)" % (k, v, len(mine)) for k, v in sorted(exits.items())),
                statistics.median(busy) if busy else float("nan"),
                sum(1 for b in busy if b >= NOISY_PCT)))
    out.append("")
    if waits:
        out.append("Waiting for a quiet machine took %d extra settle period(s) in all." % waits)
        out.append("")
    out += ["| workers | ratio to the floor's replacement ready | ratio of medians "
            "| median of the per-repetition ratios (middle half) |",
            "|---|---|---|---|"]
    for workers in sizes:
        floor = "floor-%d" % workers
        rows_of_size = (
            # (label, side, its time column if not the byte, bold)
            ("supervise (log off), its byte", "supervise-%d" % workers, None, True),
            ("supervise logging, its byte", "supervise-log-%d" % workers, None, False),
            ("supervise logging, the \"is back\" line", "supervise-log-%d" % workers,
             "respawn_line_us", False),
        )
        for label, name, key_a, bold in rows_of_size:
            ratio = "%.2f" % (medians[name + ("/line" if key_a else "")] / medians[floor])
            out.append("| %d | %s | %s | %s |" % (
                workers, label, "**%s**" % ratio if bold else ratio,
                paired_ratio(rows, name, floor, "respawn_byte_us", key_a)))
    return "\n".join(out)


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def compile_table(count, results):
    def cell(values):
        return "%.3f s (%.3f – %.3f)" % (statistics.median(values), min(values), max(values))
    out = ["| compiler | measure | only the %d #include lines of supervise.hpp "
           "| `#include <supervise.hpp>` | header minus its includes "
           "| bench/idle_pool.cpp (instantiates a pool) |" % count,
           "|---|---|---|---|---|---|"]
    for compiler, version, times in results:
        for measure, label in (("cpu", "**CPU** (user+sys)"), ("wall", "wall")):
            base = statistics.median(times["baseline"][measure])
            head = statistics.median(times["header"][measure])
            out.append("| %s | %s | %s | %s | %+.3f s (×%.2f) | %s |" % (
                version if measure == "cpu" else "", label, cell(times["baseline"][measure]),
                cell(times["header"][measure]), head - base, head / base,
                cell(times["user"][measure])))
    return "\n".join(out)


def machine_info(with_kamailio):
    lscpu = output_of(["lscpu"])
    def field(name):
        m = re.search(r"^%s:\s*(.+)$" % re.escape(name), lscpu, re.M)
        return m.group(1).strip() if m else "?"
    u = os.uname()
    version = "?"
    with open(HEADER) as f:
        m = re.search(r'#define SUPERVISE_VERSION_STR "([^"]+)"', f.read())
        if m:
            version = m.group(1)
    commit = output_of(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "?"
    # Only what is measured or measures: the header and the bench programs.
    dirty = output_of(["git", "-C", ROOT, "status", "--porcelain", "--", "include",
                       "bench/*.cpp", "bench/*.py"])
    rows = [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("kernel", "%s %s %s" % (u.sysname, u.release, u.machine)),
        ("CPU", "%s; %s CPUs, %s thread(s) per core%s" % (
            field("Model name"), field("CPU(s)"), field("Thread(s) per core"),
            "" if field("Hypervisor vendor") == "?" else
            "; hypervisor " + field("Hypervisor vendor"))),
        ("g++", output_of(["g++", "--version"]).splitlines()[0]),
        ("clang++", (output_of(["clang++", "--version"]).splitlines() or ["-"])[0]),
    ]
    if with_kamailio:
        rows.append(("kamailio", "%s (Debian package %s)" % (
            output_of(["kamailio", "-v"]).splitlines()[0].replace("version: ", ""),
            output_of(["dpkg-query", "-W", "-f", "${Version}", "kamailio"]) or "?")))
    rows.append(("supervise", "%s, commit %s%s" % (version, commit,
                                                  " + local changes" if dirty else "")))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts to run, of: %s (default: all)"
                             % ", ".join(PARTS))
    parser.add_argument("--workers", type=int, default=14,
                        help="worker processes per side in (a) and (b) "
                             "(Kamailio: children = workers - 3)")
    parser.add_argument("--reps-term", type=int, default=30, help="repetitions of (a) per side")
    parser.add_argument("--reps-kill", type=int, default=10, help="repetitions of (b) per side")
    parser.add_argument("--compile-runs", type=int, default=15, help="runs of (c) per file")
    parser.add_argument("--reps-respawn", type=int, default=30,
                        help="repetitions of (d) per side and size")
    parser.add_argument("--respawn-workers", default="4,64",
                        help="comma-separated pool sizes for (d)")
    parser.add_argument("--warmup", type=int, default=1, help="unreported trials per side first")
    parser.add_argument("--wait-idle", type=int, default=60,
                        help="wait up to this many seconds for a quiet machine (0: do not)")
    parser.add_argument("--quiet-pct", type=int, default=NOISY_PCT,
                        help="before each t0, wait for 100 ms in which the machine is at most "
                             "this busy (-1: do not wait)")
    parser.add_argument("--quiet-wait-ms", type=int, default=2000,
                        help="longest wait for such a quiet moment, per trial")
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling priority of the driver and the measured trees "
                             "(negative values need root; on the first machine -20 did not make "
                             "the results less noisy under other load)")
    parser.add_argument("--output", help="also write the Markdown report here")
    parser.add_argument("--raw", help="write every trial of (a), (b) and (d) as TSV here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the build/log directory")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        parser.error("--only takes parts from: %s" % ", ".join(PARTS))
    parts = [p for p in PARTS if p in parts]  # always in the same order
    try:
        sizes = [int(w) for w in args.respawn_workers.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 2:
        parser.error("--respawn-workers takes pool sizes of 2 or more, e.g. 4,64")
    with_kamailio = "term" in parts or "kill" in parts
    if with_kamailio and args.workers <= KAMAILIO_EXTRA_PROCS:
        parser.error("--workers must be above %d (Kamailio's timer processes)"
                     % KAMAILIO_EXTRA_PROCS)

    if with_kamailio:
        ensure_kamailio()
    tmp = tempfile.mkdtemp(prefix="supervise-bench-")
    results = {}
    headers = []
    try:
        binaries = build(tmp)
        port = free_udp_port()
        if with_kamailio:
            with open(os.path.join(tmp, "kamailio.cfg"), "w") as f:
                f.write(KAMAILIO_CFG.format(children=args.workers - KAMAILIO_EXTRA_PROCS,
                                            port=port, mpath=kamailio_module_dir()))
        info = machine_info(with_kamailio)

        def settle():
            if args.wait_idle > 0:
                return wait_until_idle(args.wait_idle)
            return cpu_busy_fraction(1.0)

        busy = []
        load_before = loadavg()
        started = time.monotonic()
        for part in parts:
            busy.append(settle())
            if part in ("term", "kill"):
                reps = args.reps_term if part == "term" else args.reps_kill
                _, header, rows = run_driver(binaries, tmp, part,
                                             sides(binaries, tmp, args.workers, port), reps,
                                             args)
            elif part == "respawn":
                side_list = []
                for workers in sizes:
                    side_list += respawn_sides(binaries, tmp, workers)
                _, header, rows = run_driver(binaries, tmp, "respawn", side_list,
                                             args.reps_respawn, args, ["--victim", "middle"])
            else:
                header, rows = None, measure_compile(tmp, args.compile_runs)
            if header:
                headers += [h for h in header if h not in headers]
            results[part] = rows
        took = time.monotonic() - started
        load_after = loadavg()
    finally:
        if args.keep_tmp:
            log("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    invoked = "bench/compare_kamailio.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    titles = {"term": "shutdown time", "kill": "fail-fast time", "compile": "compile cost",
              "respawn": "respawn time"}
    peers = "Kamailio" if with_kamailio else "a bare floor"
    lines = ["# supervise vs %s: %s" % (peers, ", ".join(titles[p] for p in parts)), ""]
    lines += ["| | |", "|---|---|"]
    lines += ["| %s | %s |" % (k, v) for k, v in info]
    lines += ["| command | `%s` |" % invoked.strip(),
              "| load | CPUs %s busy just before %s; load average %s before, %s "
              "after (%.0f s of measuring) |" % (
                  " / ".join("%.0f %%" % (b * 100) for b in busy),
                  ", ".join(LETTERS[p] for p in parts), load_before, load_after, took),
              ""]
    if with_kamailio:
        lines += kamailio_sections(args, results)
    if "compile" in parts:
        count, compile_results = results["compile"]
        lines += [
            "## (c) Compile cost: `-std=c++17 -fsyntax-only`, median of %d runs (min – max)"
            % args.compile_runs,
            "",
            "CPU time (user + system of the compiler and its subprocesses) is the measure; wall "
            "time, which other programs on the machine inflate, is shown below it.",
            "",
            "The baseline file holds the #include lines extracted from supervise.hpp by the "
            "script, so it follows the header.",
            "",
            compile_table(count, compile_results),
            "",
        ]
    if "respawn" in parts:
        lines += respawn_sections(args, sizes, results["respawn"])
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)
        log("wrote " + args.output)
    if args.raw:
        with open(args.raw, "w") as f:
            f.write("\t".join(headers) + "\n")
            for part in parts:
                if part == "compile":
                    continue
                for r in results[part]:
                    f.write("\t".join(r.get(k, "-") for k in headers) + "\n")
        log("wrote " + args.raw)


LETTERS = {"term": "(a)", "kill": "(b)", "compile": "(c)", "respawn": "(d)"}


def kamailio_sections(args, results):
    """(a) and (b): the trees, then one table per scenario that ran."""
    kam_children = args.workers - KAMAILIO_EXTRA_PROCS
    lines = [
        "## Process trees",
        "",
        "Every side has %d processes: a master and %d children." % (args.workers + 1,
                                                                    args.workers),
        "",
        "- **supervise**: `idle_pool --workers %d`: the master and %d workers, each waiting in "
        "`worker_context::wait_readable(-1)`; log and statistics silenced (`log_fd = -1`)."
        % (args.workers, args.workers),
        "- **Kamailio**: `kamailio -DD -E` (foreground, log to stderr, sent to a file) with "
        "`children=%d` on one UDP listen address (127.0.0.1): main process + %d UDP receivers + "
        "slow timer + timer + secondary timer. TCP and SCTP disabled, no ctl/jsonrpc modules, "
        "only `sl.so` (to answer the readiness probe); runtime dir and pid file in a temp dir."
        % (kam_children, kam_children),
        "- **floor**: `floor_pool --workers %d`: no library; %d children in `sigsuspend`, the "
        "master forwards SIGTERM and reaps. What ending %d processes costs here at all."
        % (args.workers, args.workers, args.workers + 1),
        "",
        "Ready (before t0) = supervise/floor wrote their ready byte (supervise: from "
        "`pool::on_ready`), Kamailio answered a SIP OPTIONS probe with 200; then the tree has "
        "exactly %d processes, all sleeping; then 100 ms of settling%s. "
        "\"Tree gone\" = the driver (a child subreaper, parent of the master) got ECHILD from "
        "`waitpid(-1)`: the master and every process of its tree are reaped. "
        "Sides run interleaved (supervise, Kamailio, floor, supervise, ...), "
        "after %d unreported warm-up run(s) each%s." % (
            args.workers + 1, quiet_clause(args), args.warmup, nice_clause(args)),
        "",
    ]
    if "term" in results:
        lines += ["## (a) SIGTERM to the master → tree gone", "",
                  shutdown_table(results["term"], args.workers), ""]
    if "kill" in results:
        lines += ["## (b) SIGKILL to one worker (the master's first-forked child) → tree gone", "",
                  shutdown_table(results["kill"], args.workers), ""]
    return lines


def respawn_sections(args, sizes, rows):
    """(d): how it was measured, then the table."""
    return [
        "## (d) SIGKILL to one worker → its replacement ready",
        "",
        "Sides, for each pool size N (%s): a master and N workers, N + 1 processes." % (
            " and ".join(str(n) for n in sizes)),
        "",
        "- **supervise**: `idle_pool --workers N --strategy one_for_one`: the one_for_one "
        "strategy, `restart_delay` 100 ms and `max_restarts` 5 set explicitly (a slot's first "
        "restart is immediate; every trial starts a fresh pool, so every kill is a first "
        "restart); workers wait in `worker_context::wait_readable(-1)`; log silenced "
        "(`log_fd = -1`), as in (a) and (b).",
        "- **supervise, logging to a pipe**: the same with `--log-fd 4`: the master logs to a "
        "pipe the driver reads, as to journald or a container runtime. On the way it writes two "
        "lines: \"worker N/2 (pid P) killed by signal 9 (SIGKILL); restarting worker N/2\" "
        "(before the fork) and \"worker N/2 (pid P') is back, generation 1\".",
        "- **floor**: `floor_pool --workers N --respawn`: no library; on SIGCHLD the master "
        "reaps and forks the replacement at once; children sleep in `sigsuspend`.",
        "",
        "t0 = the driver's SIGKILL to the middle worker in fork order (position N/2: supervise's "
        "worker N/2), the same slot in every trial. **Replacement ready** = the driver read one "
        "byte that the new worker wrote to the readiness pipe as the first thing its code did "
        "(supervise: first statement of the worker function when `generation() > 0`, i.e. "
        "after the library restored and installed its signal handling and sent its start-up "
        "record to the master; floor: first statement after `fork()`). Same signal on every "
        "side. For supervise logging, the driver also times the master's own log line "
        "\"worker N/2 (pid P) is back, generation 1\" (written when the master has read that "
        "start-up record): when the supervisor itself knows. After both, untimed: the tree "
        "must have N + 1 processes again, all sleeping, the killed one gone and exactly one new "
        "child of the master; then SIGTERM to the master and a bounded wait until its tree is "
        "gone before the next trial.",
        "",
        "Before t0: the initial ready byte (supervise: `pool::on_ready`), the tree complete and "
        "sleeping, 100 ms of settling%s. Sides run interleaved (%s, ...), after %d unreported "
        "warm-up run(s) each%s." % (
            quiet_clause(args),
            ", ".join("%s-%d" % (kind, n) for n in sizes for kind in RESPAWN_LABELS),
            args.warmup,
            nice_clause(args)),
        "",
        respawn_table(rows, sizes),
        "",
    ]


def quiet_clause(args):
    if args.quiet_pct < 0:
        return ""
    return (", repeated (for up to %d s) until the machine was at most %d %% busy during it"
            % (args.quiet_wait_ms // 1000, args.quiet_pct))


def nice_clause(args):
    return "" if args.nice == 0 else "; the driver and every side ran at nice %d" % args.nice


def on_terminate(signum, _frame):
    # Unwinds like Ctrl-C: the driver is told to clean up, the temp dir removed.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_terminate)
    signal.signal(signal.SIGHUP, on_terminate)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("compare_kamailio: interrupted; every process it started is gone")
