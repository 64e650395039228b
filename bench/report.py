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
    "ours-static": "supervise, static",
    "ours-lean": "supervise, stop_exits",
    "floor-static": "floor, static",
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
        self.by_rep = collections.defaultdict(dict)  # (measurement, side, n, rep) -> {metric: str}
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
                    m, side, n, rep, metric, value = line.split("\t")
                    self.values[(m, side, int(n), metric)].append(value)
                    self.by_rep[(m, side, int(n), rep)][metric] = value

    def nums(self, m, side, n, metric):
        out = []
        for v in self.values.get((m, side, n, metric), []):
            try:
                out.append(float(v))
            except ValueError:
                pass
        return out

    def per_rep(self, m, side, n):
        """{rep: {metric: float}} of one side and size."""
        out = {}
        for (mm, ss, nn, rep), metrics in self.by_rep.items():
            if (mm, ss, nn) == (m, side, n):
                out[rep] = {k: float(v) for k, v in metrics.items()
                            if v.replace(".", "", 1).isdigit()}
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
        w("```sh\ntools/bazel run //bench            # as root; full run: 5-8 min here\n"
          "tools/bazel run //bench -- --quick # fewer sizes, fewer trials: 60 s here\n```\n"
          "(Durations measured on the 2-vCPU machine of this report: 4.6 min while it was mostly quiet, "
          "7.5 min while other builds kept it busy, as the driver then waits up to 1 s for a quiet "
          "moment before each trial; both with our programs already built: the build (about "
          "35 s, the "
          "two static ones included) is kept in ~/.cache/supervise-bench for the next run of "
          "the same tree. On a fresh machine the first run also installs the peers from "
          "Debian.)\n")
        w("This report: `%s` run of %s, %s s. Other programs running at the same time make "
          "absolute times noisy (the load lines below say how busy the machine was); compare "
          "sides within this report (they ran interleaved) rather than numbers across "
          "reports.%s\n" % (
              "--quick" if quick else "full",
              "every part" if data.info.get("parts", "").count(",") >= 7 else
              "the parts " + data.info.get("parts", "?").replace(",", ", "),
              data.info.get("seconds", "?"),
              " A `--quick` report has few trials per cell: read it as a rough picture." if quick
              else ""))
        w("| | |\n|---|---|")
        for key in ("date", "kernel", "cpu", "g++", "clang++", "kamailio", "nginx", "runit", "s6",
                    "supervisor", "tini", "wrk", "boost", "supervise", "load", "load per part"):
            if key in data.info:
                w("| %s | %s |" % (key, data.info[key]))
        w("")
        broken = [text for _, _, text in data.notes if text.startswith("part ")]
        if broken:
            w("**Not measured in this run:** %s\n" % "; ".join(broken))
        counts_section(data, w)
        shutdown_section(data, w, img, tmp)
        failfast_section(data, w)
        respawn_section(data, w, img, tmp)
        burst_section(data, w)
        startup_section(data, w, img, tmp)
        cpu_section(data, w)
        static_section(data, w)
        idle_section(data, w, img, tmp)
        memory_section(data, w, img, tmp)
        storm_section(data, w)
        compile_section(data, w)
        serving_section(data, w)
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


def busy_line(data, m, metric, label="size"):
    """How busy the whole machine was during the settle before each t0 (the
    driver's busy_before_pct), median per size: a high figure means other
    programs competed with the trees for the CPUs."""
    parts = []
    for n in data.sizes(m):
        v = [x for s in data.sides(m) for x in data.nums(m, s, n, metric)]
        if v:
            parts.append("%d workers %.0f %%" % (n, med(v)))
    if not parts:
        return ""
    return ("How busy the machine was (both CPUs, every program) in the settle period before "
            "t0, median of the trials: %s.\n" % ", ".join(parts))


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
    if "ours-lean" in data.sides("shutdown"):
        w("**The opt-in for idle workers.** The same pool with its workers parked in "
          "`wait_readable(fd, timeout, wake_on::stop_exits)`: a SIGTERM that finds a worker "
          "blocked there ends it in the signal handler with status 0, without returning to its "
          "code (docs/design.md, \"Leaving at once while parked\"). Same trials as above.\n")
        w("| workers | supervise | supervise, stop_exits | floor | supervise / floor | "
          "stop_exits / floor |")
        w("|---|---|---|---|---|---|")
        for n in data.sizes("shutdown"):
            ours, lean, floor = (data.nums("shutdown", s, n, "tree_gone_ms")
                                 for s in ("ours", "ours-lean", "floor"))
            w("| %d | %s | %s | %s | %s | %s |" % (n, cell(ours, " ms"), cell(lean, " ms"),
                                                  cell(floor, " ms"), ratio(ours, floor),
                                                  ratio(lean, floor)))
        w("")
    orphans = sum(sum(data.nums("shutdown", s, n, "orphans")) for s in sides
                  for n in data.sizes("shutdown"))
    w("Orphans the driver had to reap after a master exited: %d. %s\n"
      % (orphans, scaling_sentence(data, "shutdown", "tree_gone_ms")))
    w(busy_line(data, "shutdown", "busy_before_pct"))


# Calls shown one by one in the detail table of section 0; the rest are summed.
DETAIL_CALLS = ("clone", "wait4", "waitid", "close", "close_range", "rt_sigaction",
                "rt_sigprocmask", "ppoll", "setpgid", "pidfd_open", "pidfd_send_signal", "kill",
                "prctl")


def count_of(data, m, side, n, metric):
    v = data.nums(m, side, n, metric)
    return v[0] if v else None


def respawn_median(data, side, n, metrics, m="syscalls"):
    """Median over the respawns of the sum of `metrics` (a missing call is 0)."""
    reps = data.per_rep(m, side, n)
    sums = [sum(r.get(k, 0) for k in metrics) for r in reps.values()
            if any(k.startswith("respawn_") for k in r)]
    return med(sums) if sums else None


def num(value, digits=1):
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e6:
        return "%d" % value
    return "%.*f" % (digits, value)


def counts_section(data, w):
    sizes = sorted(set(data.sizes("syscalls")) | set(data.sizes("faults")))
    if not sizes:
        return
    tool = data.info.get("faults_tool", "perf")
    fault_metric = "start_stop_minor_faults" if tool == "perf" else "start_stop_ru_minflt"
    w("## 0. Counts per worker: system calls and page faults\n")
    w("Counted, not timed, so other programs on the machine hardly move them (one run per "
      "size; the respawn figures are the median of %s respawns of different workers in one "
      "pool). supervise is `bench/idle_pool` (`shutdown_all`; `one_for_one` for the respawns), "
      "the floor `bench/floor_pool` (`--respawn` for the respawns), both built the same way "
      "(g++ -O2, dynamically linked). %s\n" % (
          max([len(data.per_rep("syscalls", "ours", n)) for n in sizes] + [1]),
          "Page faults: `perf stat -e page-faults,minor-faults,major-faults`, which counts every "
          "process of the tree." if tool == "perf" else
          "Page faults: `perf stat` could not count them on this machine, so they are the "
          "tree's `ru_minflt` from `wait4()` on the master (itself and every worker it reaped)."))
    w("| workers | side | system calls per worker, start + stop | page faults per worker, "
      "start + stop | master: system calls per respawn | master: wait4 + waitid per respawn "
      "| master: page faults per respawn | replacement: page faults |")
    w("|---|---|---|---|---|---|---|---|")
    per_worker_calls = collections.defaultdict(dict)
    for n in sizes:
        row = {}
        for side in ("ours", "floor"):
            calls = count_of(data, "syscalls", side, n, "start_stop_total")
            faults = count_of(data, "faults", side, n, fault_metric)
            row[side] = (
                calls / n if calls is not None else None,
                faults / n if faults is not None else None,
                respawn_median(data, side, n, ("respawn_master_total",)),
                respawn_median(data, side, n, ("respawn_master_wait4", "respawn_master_waitid")),
                respawn_median(data, side, n, ("respawn_master_minflt",), "faults"),
                respawn_median(data, side, n, ("respawn_worker_minflt",), "faults"))
            per_worker_calls[side][n] = row[side][0]
            w("| %d | %s | %s |" % (n, LABELS[side], " | ".join(num(v) for v in row[side])))
        w("| %d | supervise ÷ floor | %s |" % (n, " | ".join(
            "%.2f" % (a / b) if a is not None and b else "—"
            for a, b in zip(row["ours"], row["floor"]))))
    w("")
    w("- *system calls per worker, start + stop*: every call of every process of the tree "
      "(`strace -f -c`, all calls) from the exec of the master until it exited after SIGTERM, "
      "divided by N; it includes the master's own start (exec, dynamic loading: a few dozen "
      "calls, so a little more per worker at small N).")
    w("- *page faults per worker, start + stop*: minor page faults of the same start and stop "
      "(major faults: %s), divided by N: the copy-on-write faults of each fork in the master "
      "and the child, and the worker's own first touches." % (
          "0 in every run" if tool == "perf" and all(
              not count_of(data, "faults", s, n, "start_stop_major_faults")
              for s in ("ours", "floor") for n in sizes) else "see the TSV"))
    w("- *master: system calls per respawn*: the master alone (`strace -c -p MASTER`, attached "
      "before the SIGKILL of one worker, detached once the replacement runs and the tree is "
      "idle again).")
    w("- *master: wait4 + waitid per respawn*: of those, the calls that look for and reap "
      "the ended child: the same at every N if one SIGCHLD costs O(1), N if the master asks "
      "every worker.")
    w("- *master: page faults per respawn*: the master's minor faults over the same respawn "
      "(/proc/PID/stat), mostly copy-on-write after its fork.")
    w("- *replacement: page faults*: the new worker's own minor faults from its fork until it "
      "sleeps.\n")
    if len(sizes) > 1:
        w("System calls per worker (start + stop) at %s workers: supervise %s, floor %s.\n" % (
            ", ".join(str(n) for n in sizes),
            " → ".join(num(per_worker_calls["ours"].get(n)) for n in sizes),
            " → ".join(num(per_worker_calls["floor"].get(n)) for n in sizes)))
    w("Which calls, per worker (start + stop, every process of the tree; ÷ N):\n")
    w("| workers | side | %s | other | total |" % " | ".join(DETAIL_CALLS))
    w("|---|---|%s---|---|" % ("---|" * len(DETAIL_CALLS)))
    for n in sizes:
        for side in ("ours", "floor"):
            total = count_of(data, "syscalls", side, n, "start_stop_total")
            if total is None:
                continue
            shown = [count_of(data, "syscalls", side, n, "start_stop_" + c) or 0
                     for c in DETAIL_CALLS]
            w("| %d | %s | %s | %.2f | %.2f |" % (
                n, LABELS[side], " | ".join("%.2f" % (v / n) if v else "" for v in shown),
                (total - sum(shown)) / n, total / n))
    w("")
    w("The master's system calls for one respawn, by call (median of the respawns):\n")
    w("| workers | side | calls |")
    w("|---|---|---|")
    for n in sizes:
        for side in ("ours", "floor"):
            reps = data.per_rep("syscalls", side, n)
            names = sorted({k for r in reps.values() for k in r
                            if k.startswith("respawn_master_") and k != "respawn_master_total"})
            if not names:
                continue
            counts = [(k[len("respawn_master_"):],
                       respawn_median(data, side, n, (k,))) for k in names]
            counts.sort(key=lambda kv: (-kv[1], kv[0]))
            w("| %d | %s | %s |" % (n, LABELS[side], ", ".join(
                "%s %s" % (k, num(v)) for k, v in counts if v)))
    w("")
    burst_rows = []
    for n in sizes:
        for side in ("ours", "floor"):
            deaths = count_of(data, "syscalls", side, n, "burst_deaths")
            if not deaths:
                continue
            calls = {metric[len("burst_master_"):]: v[0] for (m, ss, nn, metric), _ in
                     data.values.items() if m == "syscalls" and ss == side and nn == n and
                     metric.startswith("burst_master_")
                     for v in [data.nums(m, ss, nn, metric)] if v}
            total = calls.pop("total", None)
            waits = calls.get("wait4", 0) + calls.get("waitid", 0)
            faults = count_of(data, "faults", side, n, "burst_master_minflt")
            top = sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))
            burst_rows.append("| %d | %s | %d | %s | %.2f | %s | %s |" % (
                n, LABELS[side], deaths, "%.2f" % (total / deaths) if total else "—",
                waits / deaths, "%.1f" % (faults / deaths) if faults is not None else "—",
                ", ".join("%s %.2f" % (k, v / deaths) for k, v in top if v / deaths >= 0.05)))
    if burst_rows:
        w("The master while all N workers are SIGKILLed at once and replaced (their SIGCHLDs "
          "merge; `strace -c -p MASTER` and /proc/PID/stat around the whole burst), per "
          "death:\n")
        w("| workers | side | deaths | master: system calls per death | wait4 + waitid per "
          "death | master: page faults per death | calls per death (≥ 0.05) |")
        w("|---|---|---|---|---|---|---|")
        for row in burst_rows:
            w(row)
        w("")
    waits = [respawn_median(data, "ours", n, ("respawn_master_wait4", "respawn_master_waitid"))
             for n in sizes]
    if all(v is not None for v in waits) and len(sizes) > 1:
        w("supervise's master made %s wait4 + waitid calls per respawn at %s workers: %s\n" % (
            " / ".join(num(v) for v in waits), " / ".join(str(n) for n in sizes),
            "the same at every size, so finding and reaping the dead worker costs O(1) per "
            "SIGCHLD, not O(N)." if max(waits) == min(waits) else
            "it changes with N."))


def burst_section(data, w):
    sizes = data.sizes("burst")
    if not sizes:
        return
    w("## 3b. Burst: K workers SIGKILLed at once → all K replacements running\n")
    w("The driver SIGKILLs K of the N workers one `kill()` after the other (every N/K-th in "
      "fork order; K = N is all of them) and times, from before the first kill, the first "
      "and the K-th replacement byte (each replacement writes one: supervise's when "
      "`generation() > 0`, the floor's right after its fork). supervise: `idle_pool --strategy "
      "one_for_one --max-restarts %s` (the default intensity, 5 restarts in 10 s, would stop "
      "the pool); floor: `floor_pool --respawn`. The kill() loop itself takes the time in the "
      "last column, which is part of every figure; the first replacement can only be read "
      "once the loop is over.\n" % "1000000")
    w("| workers | K | supervise: all K running | floor: all K running | supervise ÷ floor | "
      "supervise: first | floor: first | kill() loop, supervise / floor |")
    w("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        ks = sorted({int(metric.split("_")[0][1:]) for (m, _, nn, metric) in data.values
                     if m == "burst" and nn == n and metric.endswith("_all_ms")})
        for k in ks:
            ours = data.nums("burst", "ours", n, "k%d_all_ms" % k)
            floor = data.nums("burst", "floor", n, "k%d_all_ms" % k)
            failed = [text for mm, nn, text in data.notes
                      if mm == "burst" and nn == n and text.startswith("K=%d " % k)]
            w("| %d | %d | %s | %s | %s | %s | %s | %s / %s |" % (
                n, k, cell(ours, " ms") if ours else ("failed: " + failed[0] if failed else "—"),
                cell(floor, " ms"), ratio(ours, floor),
                fmt(med(data.nums("burst", "ours", n, "k%d_first_ms" % k))) + " ms",
                fmt(med(data.nums("burst", "floor", n, "k%d_first_ms" % k))) + " ms",
                fmt(med(data.nums("burst", "ours", n, "k%d_kills_ms" % k))),
                fmt(med(data.nums("burst", "floor", n, "k%d_kills_ms" % k))) + " ms"))
    w("")
    busy = []
    for n in sizes:
        v = [x for (m, _, nn, metric), vals in data.values.items()
             if m == "burst" and nn == n and metric.endswith("_busy_before_pct")
             for x in map(float, vals)]
        if v:
            busy.append("%d workers %.0f %%" % (n, med(v)))
    if busy:
        w("How busy the machine was (both CPUs, every program) in the settle period before the "
          "kills, median of the trials: %s.\n" % ", ".join(busy))


def cpu_table(data, w, sides, metric, per_worker=True):
    w("| workers | %s | supervise / floor |" % " | ".join(LABELS[s] for s in sides))
    w("|---" * (len(sides) + 2) + "|")
    for n in data.sizes("startstop"):
        cells = []
        for s in sides:
            v = [x / n for x in data.nums("startstop", s, n, metric)] if per_worker else \
                data.nums("startstop", s, n, metric)
            cells.append(cell(v, " ms") if v else "—")
        w("| %d | %s | %s |" % (n, " | ".join(cells),
                                ratio(data.nums("startstop", "ours", n, metric),
                                      data.nums("startstop", "floor", n, metric))))
    w("")


def cpu_section(data, w):
    sides = [s for s in ("ours", "kamailio", "nginx", "floor") if s in data.sides("startstop")]
    if not sides:
        return
    w("## 4b. CPU time of the tree, per worker\n")
    w("From the trials of measurements 1 and 4: the CPU time (user + system) of every process "
      "of the tree, divided by N. *Start-up*: the sum of `/proc/PID/schedstat` over the tree "
      "when the driver found it ready. *Start + stop*: `wait4()`'s rusage of the master when "
      "it was reaped (itself and every worker it reaped), so the whole life of the tree. CPU "
      "time, unlike the wall-clock times above, does not include waiting for a CPU that "
      "another program holds, though a busy machine still slows it through caches.\n")
    w("Start-up:\n")
    cpu_table(data, w, sides, "ready_cpu_ms")
    w("Start + stop:\n")
    cpu_table(data, w, sides, "tree_cpu_ms")


def static_section(data, w):
    pairs = [(d, st) for d, st in (("ours", "ours-static"), ("floor", "floor-static"))
             if st in data.sides("startstop") and d in data.sides("startstop")]
    if not pairs:
        return
    w("## 4c. For reference: linked statically, with `-static -Wl,-z,now`\n")
    w("The same two programs linked with `-static -Wl,-z,now` (no dynamic loader, every symbol "
      "bound before `main`), run interleaved with the sides of measurements 1 and 4. Not a "
      "side of the comparison above, which is dynamic against dynamic: the figures show how "
      "far a user gets by linking that way. Per worker; static ÷ dynamic in brackets.\n")
    w("| workers | program | start-up, dynamic | start-up, static | start-up CPU per worker, "
      "dynamic | static | minor faults per worker (start + stop), dynamic | static | "
      "SIGTERM → tree gone, dynamic | static |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    changes = collections.defaultdict(list)
    for n in data.sizes("startstop"):
        for d, st in pairs:
            def both(m, metric, scale=1.0):
                a = [x / scale for x in data.nums(m, d, n, metric)]
                b = [x / scale for x in data.nums(m, st, n, metric)]
                return a, b
            wall = both("startup", "ready_ms")
            cpu = both("startstop", "ready_cpu_ms", n)
            faults = both("startstop", "tree_minflt", n)
            gone = both("shutdown", "tree_gone_ms")
            if not wall[1]:
                continue
            if cpu[0] and cpu[1]:
                changes[d].append((n, med(cpu[1]) / med(cpu[0]) - 1))
            w("| %d | %s | %s | %s (%s) | %s | %s (%s) | %s | %s (%s) | %s | %s (%s) |" % (
                n, LABELS[d],
                cell(wall[0], " ms"), cell(wall[1], " ms"), ratio(wall[1], wall[0]),
                fmt(med(cpu[0]), 3) + " ms", fmt(med(cpu[1]), 3) + " ms", ratio(cpu[1], cpu[0]),
                fmt(med(faults[0]), 1), fmt(med(faults[1]), 1), ratio(faults[1], faults[0]),
                cell(gone[0], " ms"), cell(gone[1], " ms"), ratio(gone[1], gone[0])))
    w("")
    if changes:
        w("Start-up CPU, static against dynamic: %s.\n" % "; ".join(
            "%s %s" % (LABELS[d], ", ".join("%+.0f %% at %d" % (100 * c, n) for n, c in v))
            for d, v in changes.items()))


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


SERVERS = {"daemon": "examples/daemon", "asio": "examples/asio", "libuv": "examples/libuv",
           "nginx": "nginx"}


def serving_section(data, w):
    measurements = sorted((m for m in {k[0] for k in data.values} if m.startswith("serving-")),
                          key=lambda m: int(m.split("-")[1]))
    if not measurements:
        return
    n = data.sizes(measurements[0])[0]
    w("## 9. Serving: the example servers against nginx\n")
    w("Each server with %d workers on 127.0.0.1, on the same two CPUs as its clients: "
      "`examples/daemon` (an epoll loop per worker, `--keepalive-timeout 60000`), the Boost.Asio and libuv examples where built, "
      "and Debian's nginx with `return 200` and its default keep-alive. `wrk -t2 --latency` with "
      "keep-alive connections; the ratio is the server's requests/s over nginx's in the same "
      "run (goal: at least 0.8x, and a p99 no worse).\n" % n)
    w("| connections | server | requests/s | vs nginx | p50 ms | p99 ms | errors |")
    w("|---|---|---|---|---|---|---|")
    for m in measurements:
        nginx_rps = med(data.nums(m, "nginx", n, "requests_per_s"))
        for side in [x for x in SERVERS if x in data.sides(m)]:
            rps = data.nums(m, side, n, "requests_per_s")
            ratio = "%.2f" % (med(rps) / nginx_rps) if rps and nginx_rps else "—"
            errors = sum(data.nums(m, side, n, "socket_errors")) + sum(
                data.nums(m, side, n, "non_2xx"))
            w("| %s | %s | %s | %s | %s | %s | %d |" % (
                m.split("-")[1], SERVERS[side], cell(rps), ratio,
                cell(data.nums(m, side, n, "p50_ms")), cell(data.nums(m, side, n, "p99_ms")),
                errors))
    w("")
    if data.sides("hostile"):
        w("**Under attack.** %s connections that never send a byte and %s slowloris "
          "connections (one byte of an endless head per second), each reopened at once when "
          "the server closes it; beside them a probe sends one `GET /` at a time on a fresh "
          "connection and times the answer (goal: p99 under 50 ms).\n"
          % (data.info.get("hostile_idle", "2000"), data.info.get("hostile_slow", "50")))
        w("| server | probe p50 ms | probe p99 ms | probe max ms | answered | failed | "
          "closed by the server |")
        w("|---|---|---|---|---|---|---|")
        for side in [x for x in SERVERS if x in data.sides("hostile")]:
            def answered(metric):
                return [v for v in data.nums("hostile", side, n, metric) if v >= 0]
            w("| %s | %s | %s | %s | %d | %d | %d |" % (
                SERVERS[side], cell(answered("probe_p50_ms")), cell(answered("probe_p99_ms")),
                cell(answered("probe_max_ms")),
                sum(data.nums("hostile", side, n, "probe_requests")),
                sum(data.nums("hostile", side, n, "probe_failures")),
                sum(data.nums("hostile", side, n, "closed_by_server"))))
        w("")
    if data.sides("wakeups"):
        w("**Wake-ups while idle.** %s keep-alive connections that each made one request and "
          "then sit idle, over %s s: the context switches (voluntary and involuntary, "
          "`/proc/PID/status`) of the master and of the workers (goal: 0 for the master).\n"
          % (data.info.get("wakeup_connections", "1000"), data.info.get("wakeup_s", "10")))
        w("| server | master | worker, median | worker, most | connections still open |")
        w("|---|---|---|---|---|")
        for side in [x for x in SERVERS if x in data.sides("wakeups")]:
            w("| %s | %s | %s | %s | %s |" % (
                SERVERS[side], "/".join(data.raw("wakeups", side, n, "master")),
                "/".join(data.raw("wakeups", side, n, "worker_median")),
                "/".join(data.raw("wakeups", side, n, "worker_max")),
                "/".join(data.raw("wakeups", side, n, "connections_kept"))))
        w("")


if __name__ == "__main__":
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(BENCH)
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "bench", "results",
                                                             "benchmarks.tsv"), root)
