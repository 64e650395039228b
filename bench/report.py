#!/usr/bin/env python3
"""Writes docs/benchmarks.md and docs/img/*.png from bench/results/benchmarks.tsv.

    python3 bench/report.py [TSV]

bench/run.py calls it at the end of a run; on its own it rewrites the report
from the trials of the last run (python3 stdlib and gnuplot only).
"""

import collections
import os
import statistics
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))

LABELS = {
    "ours": "supervise",
    "ours-watchdog": "supervise, watchdog on",
    "exec": "supervise-exec",
    "daemon": "examples/daemon",
    "floor": "floor",
    "kamailio": "Kamailio",
    "nginx": "nginx",
    "runsv": "runsv",
    "s6-supervise": "s6-supervise",
    "supervisord": "supervisord",
    "tini": "tini",
}

# How each side tells the driver that it is up and that a replacement runs.
READY_SIGNAL = {
    "ours": "a byte from the master's `on_ready` hook, then the process count",
    "floor": "a byte from the master after its forks, then the process count",
    "kamailio": "a SIP OPTIONS answered with 200, then the process count",
    "nginx": "the process count (master + N workers, all sleeping)",
}
RESPAWN_SIGNAL = {
    "ours": "byte from the new worker",
    "exec": "byte from the new copy of the command",
    "nginx": "master's `start worker process` log line",
    "supervisord": "byte from the new copy of the command",
    "runsv": "byte from the new copy of the command",
    "s6-supervise": "byte from the new copy of the command",
    "floor": "byte from the new child",
}


class Data:
    def __init__(self, path):
        self.values = collections.defaultdict(list)  # (measurement, side, n, metric) -> [str]
        self.info = {}
        self.notes = []
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("# info\t"):
                    _, key, value = line.split("\t", 2)
                    self.info[key] = value
                elif line.startswith("# note\t"):
                    _, measurement, n, text = line.split("\t", 3)
                    self.notes.append((measurement, int(n), text))
                elif line.startswith("# "):
                    for item in line[2:].split():
                        key, _, value = item.partition("=")
                        self.info[key] = value
                elif not line.startswith("measurement\t") and line:
                    m, side, n, _rep, metric, value = line.split("\t")
                    self.values[(m, side, int(n), metric)].append(value)

    def nums(self, m, side, n, metric):
        out = []
        for v in self.values.get((m, side, n, metric), []):
            try:
                out.append(float(v))
            except ValueError:
                pass
        return out

    def raw(self, m, side, n, metric):
        return self.values.get((m, side, n, metric), [])

    def sides(self, m):
        seen = []
        for (mm, side, _, _) in self.values:
            if mm == m and side not in seen:
                seen.append(side)
        return seen

    def sizes(self, m):
        return sorted({n for (mm, _, n, _) in self.values if mm == m})

    def failures(self, m, side, n):
        return sum(1 for mm, nn, text in self.notes
                   if mm == m and nn == n and (" %s rep " % side) in text)

    def failed(self, m, side, n):
        for mm, nn, text in self.notes:
            if mm == m and nn == n and (" %s " % side) in text:
                return text.split(": ", 2)[-1]
        return None


def med(values):
    return statistics.median(values) if values else None


def fmt(value, digits=2):
    if value is None:
        return "—"
    if value >= 100:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.*f" % (digits, value)


def cell(values, unit=""):
    if not values:
        return "—"
    if len(values) == 1:
        return "%s%s (1 run)" % (fmt(values[0]), unit)
    return "%s%s (%s–%s)" % (fmt(med(values)), unit, fmt(min(values)), fmt(max(values)))


def ratio(a, b):
    if not a or not b or med(b) == 0:
        return "—"
    r = med(a) / med(b)
    return "%.2f" % r if r >= 0.1 else "%.3f" % r


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def gnuplot(script, tmp):
    path = os.path.join(tmp, "plot.gp")
    with open(path, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", path], check=True, timeout=60)


def plot_vs_n(data, m, metric, sides, out, title, ylabel, tmp):
    lines = []
    for side in sides:
        path = os.path.join(tmp, "%s-%s.dat" % (m, side))
        with open(path, "w") as f:
            for n in data.sizes(m):
                v = data.nums(m, side, n, metric)
                if v:
                    f.write("%d %f %f %f\n" % (n, med(v), min(v), max(v)))
        if os.path.getsize(path):
            lines.append("'%s' using 1:2:3:4 with yerrorlines lw 2 pt 7 title '%s'"
                         % (path, LABELS[side]))
    gnuplot("""set terminal pngcairo size 800,500 font ",11"
set output '%s'
set title '%s'
set logscale xy
set xlabel 'workers'
set ylabel '%s'
set key top left
set grid
set xtics (4, 16, 64, 256, 1024)
plot %s
""" % (out, title, ylabel, ", ".join(lines)), tmp)


def plot_bars(rows, out, title, ylabel, tmp, columns=("value",), logscale=False):
    """rows: [(label, v1, v2, ...)]"""
    path = os.path.join(tmp, os.path.basename(out) + ".dat")
    with open(path, "w") as f:
        for row in rows:
            f.write('"%s" %s\n' % (row[0], " ".join("%f" % max(v, 0.5 if logscale else 0)
                                                  for v in row[1:])))
    plots = ", ".join("'%s' using %d:xtic(1) title '%s'" % (path, i + 2, c)
                      for i, c in enumerate(columns))
    gnuplot("""set terminal pngcairo size 800,500 font ",11"
set output '%s'
set title '%s'
set ylabel '%s'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set grid ytics
%s
set key %s
plot %s
""" % (out, title, ylabel, "set logscale y\nset yrange [0.5:*]" if logscale else "set yrange [0:*]",
       "top right" if len(columns) > 1 else "off", plots), tmp)


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

def write(tsv, root):
    data = Data(tsv)
    img = os.path.join(root, "docs", "img")
    os.makedirs(img, exist_ok=True)
    out = []
    w = out.append
    quick = data.info.get("mode") == "quick"
    with tempfile.TemporaryDirectory() as tmp:
        # The page is rewritten whole on every run, so a hand edit would be lost silently.
        w("<!-- Generated by bench/report.py from bench/results/benchmarks.tsv and "
          "bench/findings.md; do not edit by hand: run tools/bazel run //bench -->")
        w("# Benchmarks\n")
        w("*Generated by `bench/report.py` from the trials in `bench/results/benchmarks.tsv` and "
          "the text of `bench/findings.md`: edit those, not this page (`python3 bench/report.py` "
          "rewrites it from the last run, `tools/bazel run //bench` measures again).*\n")
        w("supervise next to the systems people use instead, installed from Debian and run on "
          "127.0.0.1 in the same run, interleaved, next to a **floor**: a bare C++ master with no "
          "library that forks, signals and reaps the same processes (`bench/floor_pool.cpp`). "
          "Medians, min–max in brackets, ratios of medians. Method and programs: "
          "[bench/README.md](../bench/README.md). Every trial: "
          "[bench/results/benchmarks.tsv](../bench/results/benchmarks.tsv).\n")
        w("```sh\ntools/bazel run //bench            # as root; full run: 8 min here\n"
          "tools/bazel run //bench -- --quick # fewer sizes, fewer trials: 80 s here\n```\n"
          "(Durations measured on the quiet 2-vCPU machine of this report, each including the "
          "20 s build of our programs, which are then kept in ~/.cache/supervise-bench for the "
          "next run of the same tree. On a fresh machine the first run also installs the peers "
          "from Debian. On a busy machine a full run took 16 min.)\n")
        w("This report: `%s` run, %s s. Other programs running at the same time make absolute "
          "times noisy (the load line below says how busy the machine was); compare sides "
          "within this report (they ran interleaved) rather than numbers across reports.%s\n" % (
              "--quick" if quick else "full", data.info.get("seconds", "?"),
              " A `--quick` report has few trials per cell: read it as a rough picture." if quick
              else ""))
        w("| | |\n|---|---|")
        for key in ("date", "kernel", "cpu", "g++", "clang++", "kamailio", "nginx", "runit", "s6",
                    "supervisor", "tini", "wrk", "boost", "supervise", "load"):
            if key in data.info:
                w("| %s | %s |" % (key, data.info[key]))
        w("")
        broken = [text for _, _, text in data.notes if text.startswith("part ")]
        if broken:
            w("**Not measured in this run:** %s\n" % "; ".join(broken))
        shutdown_section(data, w, img, tmp)
        syscalls_section(data, w)
        failfast_section(data, w)
        respawn_section(data, w, img, tmp)
        startup_section(data, w, img, tmp)
        idle_section(data, w, img, tmp)
        memory_section(data, w, img, tmp)
        storm_section(data, w)
        compile_section(data, w)
        http_section(data, w)
        with open(os.path.join(BENCH, "findings.md")) as f:
            w(f.read())
    with open(os.path.join(root, "docs", "benchmarks.md"), "w") as f:
        f.write("\n".join(out))


def per_worker(data, m, metric, side, n):
    v = data.nums(m, side, n, metric)
    return med(v) / n if v else None


def scaling_sentence(data, m, metric):
    sizes = [n for n in data.sizes(m) if n >= 64]
    if len(sizes) < 2:
        return ""
    a, b = sizes[-2], sizes[-1]
    parts = []
    for side in ("ours", "floor", "kamailio", "nginx"):
        pa, pb = per_worker(data, m, metric, side, a), per_worker(data, m, metric, side, b)
        if pa and pb:
            parts.append("%s %.2f → %.2f ms (×%.1f)" % (LABELS[side], pa, pb, pb / pa))
    return ("Time per worker from %d to %d workers: %s. A master that does O(N) work per "
            "worker keeps this flat; growth that the floor shows too is the kernel's." % (
                a, b, "; ".join(parts)))


def vs_n_table(data, w, m, metric, sides):
    w("| workers | %s | supervise / floor | %s |" % (
        " | ".join(LABELS[s] for s in sides),
        " | ".join("supervise / %s" % LABELS[s] for s in sides if s not in ("ours", "floor"))))
    w("|---" * (1 + len(sides) + 1 + len([s for s in sides if s not in ("ours", "floor")])) + "|")
    for n in data.sizes(m):
        cells = []
        for s in sides:
            v = data.nums(m, s, n, metric)
            why = data.failed("shutdown", s, n)
            if v and why:
                cells.append(cell(v, " ms") + "; %d trial(s) not ready within the bound"
                             % data.failures("shutdown", s, n))
            else:
                cells.append(cell(v, " ms") if v else
                             ("not ready in time (%s)" % why if why else "—"))
        ours = data.nums(m, "ours", n, metric)
        ratios = [ratio(ours, data.nums(m, s, n, metric)) for s in sides
                  if s not in ("ours", "floor")]
        w("| %d | %s | %s | %s |" % (n, " | ".join(cells), ratio(ours, data.nums(m, "floor", n,
                                                                                  metric)),
                                      " | ".join(ratios)))
    w("")


def shutdown_section(data, w, img, tmp):
    sides = [s for s in ("ours", "kamailio", "nginx", "floor") if s in data.sides("shutdown")]
    if not sides:
        return
    w("## 1. Shutdown: SIGTERM to the master → every process reaped\n")
    w("The driver (`bench/shutdown_bench.cpp`, a child subreaper) sends SIGTERM to the master "
      "and waits until the master exited and `waitpid` says no child is left. Kamailio runs with "
      "`children=N` (its tree is N + 4 processes: three timer processes and the main one), "
      "nginx with `worker_processes N`. A tree must be ready within max(10 s, 40 ms × N) (41 s "
      "at 1024) and gone within the same bound after the signal, or the trial fails; a side "
      "that fails twice at a size shows why in its cell.\n")
    vs_n_table(data, w, "shutdown", "tree_gone_ms", sides)
    plot_vs_n(data, "shutdown", "tree_gone_ms", sides, os.path.join(img, "shutdown.png"),
              "SIGTERM to the master until the whole tree is reaped", "ms (log)", tmp)
    w("![shutdown time against workers](img/shutdown.png)\n")
    orphans = sum(sum(data.nums("shutdown", s, n, "orphans")) for s in sides
                  for n in data.sizes("shutdown"))
    w("Orphans the driver had to reap after a master exited: %d. %s\n"
      % (orphans, scaling_sentence(data, "shutdown", "tree_gone_ms")))


def syscalls_section(data, w):
    sizes = data.sizes("syscalls")
    if not sizes:
        return
    w("## 1b. System calls that grow with N (strace)\n")
    w("Counted, not timed, so other load cannot move them: `strace -f -c` over a start of N "
      "workers and their stop (every process of the tree), for supervise (`idle_pool`) and the "
      "floor; and `strace -c -p MASTER` around one respawn (`one_for_one`, one worker "
      "SIGKILLed), the master alone.\n")
    w("| workers | supervise: close() | ÷ N²/2 | close_range() | floor: close() | "
      "supervise: wait4() | clone() | supervise master, one respawn: wait4() |")
    w("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        def one(side, metric):
            v = data.nums("syscalls", side, n, metric)
            return int(v[0]) if v else 0
        closes = one("ours", "start_stop_close")
        w("| %d | %d | %.2f | %d | %d | %d | %d | %d |" % (
            n, closes, closes / (n * n / 2.0), one("ours", "start_stop_close_range"),
            one("floor", "start_stop_close"),
            one("ours", "start_stop_wait4"), one("ours", "start_stop_clone"),
            one("ours", "respawn_master_wait4")))
    w("")
    w("A close() count near N²/2 means each new worker closes, one by one, the pidfds of the "
      "siblings forked before it; a few per worker plus one close_range() each means it drops "
      "them in one call. wait4() is one per worker for a start and a stop, but one per slot "
      "for every SIGCHLD: `reap()` scans every slot with `waitpid(pid, WNOHANG)`, so a single "
      "respawn costs the master N system calls.\n")


def failfast_section(data, w):
    sides = [s for s in ("ours", "kamailio", "floor") if s in data.sides("failfast")]
    if not sides:
        return
    w("## 2. Fail-fast: one worker SIGKILLed → the master exited, tree reaped\n")
    w("The seed's behaviour (supervise's default strategy `shutdown_all`): the master's "
      "first-forked child is SIGKILLed; time until the whole tree is gone, and the master's "
      "exit status.\n")
    w("| workers | %s | supervise / floor | supervise / Kamailio | exit status |" %
      " | ".join(LABELS[s] for s in sides))
    w("|---" * (len(sides) + 4) + "|")
    for n in data.sizes("failfast"):
        statuses = ", ".join("%s %s" % (LABELS[s], "/".join(sorted(set(
            data.raw("failfast", s, n, "exit_code"))))) for s in sides)
        w("| %d | %s | %s | %s | %s |" % (
            n, " | ".join(cell(data.nums("failfast", s, n, "tree_gone_ms"), " ms") for s in sides),
            ratio(data.nums("failfast", "ours", n, "tree_gone_ms"),
                  data.nums("failfast", "floor", n, "tree_gone_ms")),
            ratio(data.nums("failfast", "ours", n, "tree_gone_ms"),
                  data.nums("failfast", "kamailio", n, "tree_gone_ms")), statuses))
    w("")


def respawn_section(data, w, img, tmp):
    sides = [s for s in ("ours", "exec", "nginx", "supervisord", "runsv", "s6-supervise", "floor")
             if s in data.sides("respawn")]
    if not sides:
        return
    w("## 3. Respawn: one worker SIGKILLed → its replacement running\n")
    w("The middle worker in fork order is SIGKILLed after the tree sat idle (1.1 s for runsv, "
      "s6-supervise and supervisord, which hold back restarts of processes younger than a "
      "second; 100 ms for the others); time until the replacement says it runs. "
      "runsv and s6-supervise supervise one process each; the pools run 4. supervise-exec, "
      "supervisord, runsv and s6-supervise all run the same command, `bench/ready_worker` "
      "(writes a byte to a FIFO, then sleeps). supervise: `bench/idle_pool --strategy "
      "one_for_one`.\n")
    floor = data.nums("respawn", "floor", 4, "ready_ms")
    ours = data.nums("respawn", "ours", 4, "ready_ms")
    w("| side | workers | replacement running | ratio to floor | supervise / side | signal |")
    w("|---|---|---|---|---|---|")
    bars = []
    for s in sides:
        n = data.sizes("respawn")
        n = [k for k in n if data.nums("respawn", s, k, "ready_ms")]
        if not n:
            why = data.failed("respawn", s, 4) or data.failed("respawn", s, 1)
            w("| %s | — | failed: %s | | | |" % (LABELS[s], why or "no data"))
            continue
        v = data.nums("respawn", s, n[0], "ready_ms")
        bars.append((LABELS[s], med(v)))
        w("| %s | %d | %s | %s | %s | %s |" % (LABELS[s], n[0], cell(v, " ms"), ratio(v, floor),
                                               ratio(ours, v) if s != "ours" else "",
                                               RESPAWN_SIGNAL[s]))
    w("")
    plot_bars(bars, os.path.join(img, "respawn.png"), "SIGKILL to one worker until its "
              "replacement runs (median)", "ms (log)", tmp, logscale=True)
    w("![respawn time per side](img/respawn.png)\n")
    slow = [LABELS[s] for s in sides
            if data.nums("respawn", s, 4, "ready_ms") + data.nums("respawn", s, 1, "ready_ms")
            and med(data.nums("respawn", s, 4, "ready_ms") +
                    data.nums("respawn", s, 1, "ready_ms")) > 500]
    if slow:
        w("%s took about a second (median) to replace the process, even after 1.1 s of calm: "
          "a pacing of their own, not a cost of the machine. nginx's figure is "
          "its master's log line, written right after its fork, so it comes before the new "
          "worker's own first instruction; the others are the new process's own byte.\n"
          % " and ".join(slow))


def startup_section(data, w, img, tmp):
    sides = [s for s in ("ours", "kamailio", "nginx", "floor") if s in data.sides("startup")]
    if not sides:
        return
    w("## 4. Start-up: master started → N workers ready\n")
    w("From the driver's fork of the master until the side is ready: %s. The process count "
      "is read from /proc no more often than one scan in five, so the driver takes at most a "
      "fifth of a CPU from the tree it waits for. Same trials as measurement 1.\n"
      % "; ".join("%s: %s" % (LABELS[s], READY_SIGNAL[s]) for s in sides))
    vs_n_table(data, w, "startup", "ready_ms", sides)
    plot_vs_n(data, "startup", "ready_ms", sides, os.path.join(img, "startup.png"),
              "Master started until N workers are ready", "ms (log)", tmp)
    w("![start-up time against workers](img/startup.png)\n")
    w(scaling_sentence(data, "startup", "ready_ms") + "\n")


def idle_section(data, w, img, tmp):
    sides = [s for s in ("ours", "ours-watchdog", "exec", "floor", "nginx", "kamailio",
                         "supervisord", "runsv", "s6-supervise", "tini") if s in data.sides("idle")]
    if not sides:
        return
    secs = data.raw("idle", sides[0], data.sizes("idle")[-1], "seconds")
    w("## 5. Idle cost over %s s\n" % (secs[0] if secs else "?"))
    w("Every side started at once and left alone (pools with 64 workers; runsv, s6-supervise "
      "and tini with one process): the master's context switches (voluntary + involuntary, "
      "from /proc/PID/status: each is a wake-up) and CPU time (/proc/PID/schedstat), and the "
      "wake-ups of all its workers together. The watchdog side runs `heartbeat_timeout` = "
      "2000 ms.\n")
    w("| side | workers | master wake-ups | master CPU | workers' wake-ups |")
    w("|---|---|---|---|---|")
    bars = []
    for s in sides:
        n = [k for k in data.sizes("idle") if data.nums("idle", s, k, "master_wakeups")]
        if not n:
            continue
        n = n[0]
        wake = med(data.nums("idle", s, n, "master_wakeups"))
        cpu = med(data.nums("idle", s, n, "master_cpu_ms"))
        workers = med(data.nums("idle", s, n, "workers_wakeups"))
        bars.append((LABELS[s], wake, workers))
        w("| %s | %d | %d | %.2f ms | %d |" % (LABELS[s], n, wake, cpu, workers))
    w("")
    plot_bars(bars, os.path.join(img, "idle.png"),
              "Wake-ups in %s s of idling (log scale; no bar: none)" % (secs[0] if secs else "?"),
              "wake-ups", tmp, columns=("master", "all workers"), logscale=True)
    w("![idle wake-ups per side](img/idle.png)\n")


def memory_section(data, w, img, tmp):
    sides = [s for s in ("ours", "ours-watchdog", "exec", "floor", "nginx", "kamailio",
                         "supervisord", "runsv", "s6-supervise", "tini")
             if s in data.sides("memory")]
    if not sides:
        return
    w("## 6. Memory of the master\n")
    w("From /proc/PID/smaps_rollup of the master while the pool of measurement 5 was idle: RSS, "
      "PSS (shared pages divided among the processes that map them) and private pages "
      "(Private_Clean + Private_Dirty): what the master alone costs. Mean PSS of a worker for "
      "reference.\n")
    ours_priv = med(data.nums("memory", "ours", memory_size(data), "master_private_kb"))
    w("| side | workers | RSS | PSS | private | private ÷ supervise's | worker PSS |")
    w("|---|---|---|---|---|---|---|")
    bars = []
    for s in sides:
        n = [k for k in data.sizes("memory") if data.nums("memory", s, k, "master_rss_kb")]
        if not n:
            continue
        n = n[0]
        rss, pss, priv, wpss = (med(data.nums("memory", s, n, k)) for k in (
            "master_rss_kb", "master_pss_kb", "master_private_kb", "worker_pss_kb"))
        bars.append((LABELS[s], rss, priv))
        w("| %s | %d | %d KiB | %d KiB | %d KiB | %s | %d KiB |" % (
            LABELS[s], n, rss, pss, priv, "%.1f" % (priv / ours_priv) if ours_priv else "—",
            wpss))
    w("")
    plot_bars(bars, os.path.join(img, "memory.png"), "Memory of the master (log scale)", "KiB",
              tmp, columns=("RSS", "private"), logscale=True)
    w("![master memory per side](img/memory.png)\n")


def memory_size(data):
    sizes = [n for n in data.sizes("memory") if data.nums("memory", "ours", n, "master_rss_kb")]
    return sizes[0] if sizes else 0


def storm_section(data, w):
    sides = [s for s in ("ours", "nginx", "kamailio") if s in data.sides("storm")]
    if not sides:
        return
    w("## 7. Signal storm: 100,000 SIGUSR1, then SIGTERM\n")
    w("A master with 4 workers gets 100,000 SIGUSR1 as fast as `kill()` can send them (supervise, "
      "`seed` preset: statistics, here to no descriptor; nginx: reopen logs; Kamailio: memory "
      "status), then one SIGTERM. The floor is left out: it has no SIGUSR1 handler, so the "
      "first one ends it.\n")
    w("| side | sent | storm took | master alive after it | SIGTERM → exit | exit status | "
      "tree gone |")
    w("|---|---|---|---|---|---|---|")
    for s in sides:
        n = data.sizes("storm")[0]
        w("| %s | %s | %s | %s | %s | %s | %s |" % (
            LABELS[s], "/".join(sorted(set(data.raw("storm", s, n, "sent")))),
            cell(data.nums("storm", s, n, "storm_ms"), " ms"),
            "yes" if all(v == 1 for v in data.nums("storm", s, n, "alive_after_storm")) else "no",
            cell(data.nums("storm", s, n, "term_to_exit_ms"), " ms"),
            "/".join(sorted(set(data.raw("storm", s, n, "exit_code")))),
            "yes" if all(v == 1 for v in data.nums("storm", s, n, "tree_gone")) else "no"))
    w("")


def compile_section(data, w):
    if "compile" not in {k[0] for k in data.values}:
        return
    w("## 8. Compile cost: `-std=c++17 -fsyntax-only`, CPU time\n")
    w("Three one-line files: the %s standard and POSIX `#include`s of supervise.hpp (taken from "
      "the header by the script), `#include <supervise.hpp>`, and Boost.Asio's "
      "`io_context.hpp` + `signal_set.hpp` (what a program that wants Asio's signal handling "
      "includes). CPU time of the compiler (user + system), which other load hardly moves.\n"
      % data.info.get("std_includes", "?"))
    w("| compiler | std headers only | supervise.hpp | Boost.Asio signal_set | supervise.hpp "
      "− std | Asio / supervise.hpp |")
    w("|---|---|---|---|---|---|")
    for compiler in ("g++", "clang++"):
        metric = compiler + "_cpu_s"
        std, sup, asio = (data.nums("compile", f, 0, metric) for f in ("std", "supervise", "asio"))
        if not sup:
            continue
        w("| %s | %s | %s | %s | %+.2f s | %s |" % (
            compiler, cell(std, " s"), cell(sup, " s"), cell(asio, " s"),
            med(sup) - med(std), ratio(asio, sup)))
    w("")


def http_section(data, w):
    if "http" not in {k[0] for k in data.values}:
        return
    w("## 9. Context, not a claim: HTTP throughput with wrk\n")
    w("`wrk -t2 -c16` against `examples/daemon --workers 4` and nginx (`worker_processes 4`, "
      "`return 200`, `keepalive_timeout 0` because the example daemon answers one request per "
      "connection), on the same two CPUs as wrk. Neither master takes part in serving: the "
      "point is that supervision costs the workers nothing, not that the toy HTTP code is "
      "fast.\n")
    w("| server | requests/s | non-2xx | socket errors |")
    w("|---|---|---|---|")
    for s in ("daemon", "nginx"):
        n = data.sizes("http")[0]
        w("| %s | %s | %s | %s |" % (LABELS[s], cell(data.nums("http", s, n, "requests_per_s")),
                                     "/".join(sorted(set(data.raw("http", s, n, "non_2xx")))),
                                     "/".join(sorted(set(data.raw("http", s, n,
                                                                  "socket_errors"))))))
    w("")


if __name__ == "__main__":
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(BENCH)
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "bench", "results",
                                                             "benchmarks.tsv"), root)
