#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tabulate libctx's benchmarks against the peers of the same `make bench`.

usage: summarize.py --ctx DIR --peers DIR [--out FILE] [--command TEXT]
                    [--peers-reused 0|1]

--ctx holds run1/, run2/, ... each with ctx.txt, ctx-static.txt, sync.txt
and os.txt ("RESULT name value unit" lines from bench_ctx,
bench_ctx_static, bench_sync and bench_os), go-chan.txt and go-exec.txt
(`go test -bench` output of bench/go) and sync-attempts.txt (the
disturbance of each bench_sync attempt); --peers holds the
peers' run1/, run2/, ... as ../shared/peers/run.sh writes them (parsed
with that directory's summarize.py). Every figure is the median over the
runs. Writes Markdown to --out and prints it.
"""
import argparse
import datetime
import glob
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_SRC = os.path.join(ROOT, "..", "shared", "peers")


def peers_module():
    """The peers' own summarize.py: its parsers and its number format."""
    path = os.path.join(PEERS_SRC, "summarize.py")
    spec = importlib.util.spec_from_file_location("peers_summarize", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


P = peers_module()
fmt = P.fmt


def load_ctx(root):
    vals = defaultdict(list)
    runs = sorted(d for d in os.listdir(root) if d.startswith("run"))
    for r in runs:
        for fn in ("ctx.txt", "ctx-static.txt", "sync.txt", "os.txt"):
            p = os.path.join(root, r, fn)
            if os.path.exists(p):
                P.parse_result(p, "ctx", vals)
        for p in sorted(glob.glob(os.path.join(root, r, "go-*.txt"))):
            P.parse_go(p, vals)  # bench/go: channels, exec, as ("go", ...)
    # Scripts that repeat their own measurement: their medians, once.
    for fn in ("ctxrun.txt", "httpd.txt"):
        p = os.path.join(root, fn)
        if os.path.exists(p):
            P.parse_result(p, "ctx", vals)
    return vals, len(runs)


class Figures:
    def __init__(self, ctx_dir, peers_dir):
        self.vals, self.ctx_runs = load_ctx(ctx_dir)
        pv, self.peer_runs = P.load(peers_dir)
        for k, v in pv.items():
            self.vals[k].extend(v)
        self.med = {k: statistics.median(v) for k, v in self.vals.items()}

    def get(self, src, name, unit):
        return self.med.get((src, name, unit))

    @staticmethod
    def run_value(root, i, fn, name, unit):
        """One run's figure, from root/run<i>/fn."""
        vals = defaultdict(list)
        p = os.path.join(root, f"run{i}", fn)
        if os.path.exists(p):
            P.parse_result(p, "x", vals)
        v = vals.get(("x", name, unit))
        return v[0] if v else None

    @staticmethod
    def run_go_value(root, i, name, unit):
        """One run's Go figure, from root/run<i>/go-*.txt."""
        vals = defaultdict(list)
        for p in glob.glob(os.path.join(root, f"run{i}", "go-*.txt")):
            P.parse_go(p, vals)
        v = vals.get(("go", name, unit))
        return v[0] if v else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def met(v, target):
    if target is None:
        return "—"
    if v is None:
        return "not measured"
    return "yes" if v <= target else "**NO**"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return out


# One row of the main table: label, libctx figure, each peer's figure
# ((src, name, unit) or None), an optional extra text for a peer cell, and
# the target (a bound on the libctx figure, same unit) or None.
MAIN = [
    ("poll: `ctx_done(c)` on a live child, 1 thread [ns/op]",
     ("poll.ctx_done", "ns/op"),
     ("go", "DonePoll", "ns/op"), ("cpp", "poll.stop_requested", "ns/op"),
     ("rust", "poll.is_cancelled", "ns/op"),
     ("go", "ErrPoll", "ns/op"), 0.5),
    ("poll, 2 threads on one context [ns/op, wall/total ops]",
     ("poll.ctx_done.parallel", "ns/op"),
     ("go", "DonePollParallel", "ns/op"),
     ("cpp", "poll.stop_requested.parallel", "ns/op"),
     ("rust", "poll.is_cancelled.parallel", "ns/op"),
     ("go", "ErrPollParallel", "ns/op"), 0.5),
    ("poll through the exported function `(ctx_done)(c)`, 1 thread [ns/op]",
     ("poll.ctx_done_call", "ns/op"), None, None, None, None, None),
    ("root: `ctx_with_cancel(ctx_background())`+cancel+release [ns]",
     ("pair.root", "ns/op"),
     ("go", "WithCancelPairBackground", "ns/op"),
     ("cpp", "pair.stop_source", "ns/op"),
     ("rust", "pair.root_new_drop", "ns/op"), None, None),
    ("child of a live parent: create+cancel+release [ns]",
     ("pair.child", "ns/op"),
     ("go", "WithCancelPair", "ns/op"), ("cpp", "pair.linked_child", "ns/op"),
     ("rust", "pair.child_token_cancel_drop", "ns/op"), None, 40),
    ("child of a live parent: create+release, no cancel [ns]",
     ("pair.child_nocancel", "ns/op"),
     None, None, ("rust", "pair.child_token_drop", "ns/op"), None, None),
    ("child + `ctx_fd` materialised (Go: Done channel), +cancel [ns]",
     ("pair.child_fd", "ns/op"),
     ("go", "WithCancelPairDone", "ns/op"), None, None, None, None),
    ("`ctx_with_timeout(parent, 1 h)`+cancel+release [ns]",
     ("pair.timeout", "ns/op"),
     ("go", "WithTimeoutPair", "ns/op"), None, None, None, 100),
] + [
    (f"cancel propagation, flat fan-out n={n} [ns/descendant]",
     (f"tree.flat.n={n}", "ns/descendant"),
     ("go", f"TreeFlat/n={n}", "ns/descendant"),
     ("cpp", f"tree.flat.n={n}", "ns/descendant"),
     ("rust", f"tree.flat.n={n}", "ns/descendant"), None,
     20 if n == 100000 else None)
    for n in (1, 10, 100, 1000, 10000, 100000)
] + [
    ("cancel propagation, chain depth 1000 [ns/descendant]",
     ("tree.chain.depth=1000", "ns/descendant"),
     ("go", "TreeChain/depth=1000", "ns/descendant"),
     ("cpp", "tree.chain.depth=1000", "ns/descendant"),
     ("rust", "tree.chain.depth=1000", "ns/descendant"), None, 20),
    ("cancel propagation, flat n=100000, total [ns]",
     ("tree.flat.n=100000.total", "ns"),
     ("go", "TreeFlat/n=100000", "ns/cancel-median"),
     ("cpp", "tree.flat.n=100000.total", "ns"),
     ("rust", "tree.flat.n=100000.total", "ns"), None, None),
]

MEM = [
    ("memory per live child, cancel-only [B]",
     ("mem.child", "B/live-child"),
     ("go", "Mem/cancel", "B/live-child"),
     ("cpp", "mem.linked_child", "B/live-child"),
     ("rust", "mem.child_token", "B/live-child"), None, 64),
    ("memory per live child with a deadline (`ctx_with_timeout` 1 h) [B]",
     ("mem.child_timeout", "B/live-child"),
     ("go", "Mem/timeout", "B/live-child"), None, None, None, 128),
]

WAKE = [
    (1, ("go", "Wake/n=1", "ns/wake-all"), ("cpp", "wake.n=1.total", "ns"),
     ("rust", "wake.n=1.total", "ns")),
    (100, ("go", "Wake/n=100", "ns/wake-all"),
     ("cpp", "wake.n=100.total", "ns"), ("rust", "wake.n=100.total", "ns")),
    (1000, None, ("cpp", "wake.n=1000.total", "ns"), None),
]
WAKE_TARGET = 1.2


# The sync layer beside Go: label, libctx figure, Go figure, an optional
# second Go figure (shown in brackets), and the target: a bound on the
# libctx figure in the same unit, "go" (at most Go's figure), or None.
GO_CTX = " (in a `select` with `ctx.Done()`: {})"
SYNC = [
    ("group: `ctx_group_new` + 1000 × `ctx_group_go`(no-op) + "
     "`ctx_group_wait` + `ctx_group_free` [ns/task] (Go: errgroup, no limit)",
     ("group.nolimit", "ns/task"), ("go", "Errgroup/nolimit", "ns/task"),
     None, 150),
    ("the same with `ctx_group_set_limit(g, 2)` [ns/task] (Go: "
     "`SetLimit(2)`)",
     ("group.limit=2", "ns/task"), ("go", "Errgroup/limit=2", "ns/task"),
     None, "go"),
    ("first error → `ctx_group_wait` returns, 1000 siblings parked in "
     "`ctx_wait` [ns, median]",
     ("group.first_error", "ns"),
     ("go", "ErrgroupFirstError", "ns/first-error-to-wait"), None, 100e3),
    ("semaphore acquire+release, capacity 1, 1 thread [ns/op]",
     ("sem.uncontended", "ns/op"), ("go", "SemaphoreUncontended", "ns/op"),
     None, 15),
    ("semaphore, capacity 1, 2 threads contending [ns/op, wall/total ops]",
     ("sem.contended.parallel", "ns/op"),
     ("go", "SemaphoreContended", "ns/op"), None, "go"),
    ("semaphore, 2 threads, capacity never exhausted [ns/op, wall/total "
     "ops]",
     ("sem.nowait.parallel", "ns/op"),
     ("go", "SemaphoreParallelNoWait", "ns/op"), None, None),
    ("limiter: `ctx_limiter_allow`, token available [ns/op]",
     ("rate.allow", "ns/op"), ("go", "RateAllow", "ns/op"), None, 30),
    ("limiter: `ctx_limiter_wait`, token available, live cancellable "
     "context [ns/op]",
     ("rate.wait", "ns/op"), ("go", "RateWait", "ns/op"), None, 40),
    ("channel, buffered (capacity 128): 1 producer thread → 1 consumer "
     "thread [ns/element]",
     ("chan.buffered.cap=128", "ns/elem"), ("go", "ChanBuffered", "ns/op"),
     ("go", "ChanBufferedCtx", "ns/op"), None),
    ("channel, rendezvous (capacity 0): 1 producer thread → 1 consumer "
     "thread [ns/element]",
     ("chan.rendezvous", "ns/elem"), ("go", "ChanUnbuffered", "ns/op"),
     ("go", "ChanUnbufferedCtx", "ns/op"), None),
    ("select: receive from 2 buffered channels (128) + a context, "
     "1 producer [ns/element]",
     ("chan.select2.cap=128", "ns/elem"), ("go", "ChanSelect2", "ns/op"),
     None, None),
]


def go_allocs(F, name):
    b, n = F.get("go", name, "B/op"), F.get("go", name, "allocs/op")
    if b is None or n is None or (b == 0 and n == 0):
        return ""
    return f" ({b:.0f} B, {n:.0f} allocs)"


def sync_rows(F):
    rows = []
    for label, mine, go, go_alt, target in SYNC:
        v = F.get("ctx", *mine)
        gv = F.get(*go)
        cell = fmt(gv) + go_allocs(F, go[1]) if gv is not None else "—"
        if go_alt and F.get(*go_alt) is not None:
            cell += GO_CTX.format(fmt(F.get(*go_alt)))
        if target is None:
            ttext, ok = "—", "—"
        elif target == "go":
            ttext = "≤ Go"
            ok = met(v, gv) if gv is not None else "no Go figure"
        else:
            ttext = f"≤ {target:g}" if target < 1e4 else f"≤ {fmt(target)}"
            ok = met(v, target)
        rows.append([label, fmt(v), cell, fmt_ratio(ratio(v, gv)), ttext,
                     ok])
    return rows


def os_rows(F):
    g = F.get
    rows = []
    for label, mine, go in [
            ("spawn + wait `/bin/true`, `ctx_background()` [ns] (Go: "
             "`exec.Command(...).Run()`)", "spawn.true.ctx", "ExecTrue"),
            ("the same under a context with a deadline, watched while "
             "waiting [ns] (Go: `exec.CommandContext`)",
             "spawn.true.ctx_deadline", "ExecTrueContext")]:
        v, gv = g("ctx", mine, "ns"), g("go", go, "ns/op")
        rows.append([label, fmt(v), fmt(gv), fmt_ratio(ratio(v, gv)),
                     fmt(g("ctx", "spawn.true.posix_spawn", "ns")), "—",
                     "—"])
    v = g("ctx", "killafter.overshoot", "ns")
    rows.append(["kill-after: a child ignoring SIGTERM, wait delay 100 ms: "
                 "`ctx_cancel` to `ctx_proc_wait` returning, less the delay "
                 "[median of 20]", fmt(v), "—", "—", "—", "< 50 ms",
                 met(v, 50e6)])
    v = g("ctx", "killafter.overshoot_max", "ns")
    rows.append(["the same, worst of 20", fmt(v), "—", "—", "—", "< 50 ms",
                 met(v, 50e6)])
    v, raw = (g("ctx", "read.ready.ctx_pair_ns", "ns"),
              g("ctx", "read.ready.raw_pair_ns", "ns"))
    rows.append(["1-byte `write` + `ctx_read` on a pipe, data ready "
                 "[ns/pair] (floor: `write` + `read`)", fmt(v), "—", "—",
                 fmt(raw), "—", "—"])
    v = g("ctx", "read.ready.ctx_deadline_pair_ns", "ns")
    rows.append(["the same, a live context with a deadline [ns/pair]",
                 fmt(v), "—", "—", fmt(raw), "—", "—"])
    return rows


def compare_rows(F, spec, prefix=""):
    rows = []
    for label, mine, go, cpp, rust, go_alt, target in spec:
        v = F.get("ctx", prefix + mine[0], mine[1])
        cells, peer_vals = [], []
        for key in (go, cpp, rust):
            pv = F.get(*key) if key else None
            cells.append(fmt(pv) if pv is not None else "—")
            if pv is not None:
                peer_vals.append(pv)
        if go_alt:
            alt = F.get(*go_alt)
            if alt is not None:
                cells[0] += f" (`Err()` {fmt(alt)})"
                peer_vals.append(alt)
        best = min(peer_vals) if peer_vals else None
        rows.append([label, fmt(v)] + cells +
                    [fmt(best) if best is not None else "—",
                     fmt_ratio(ratio(v, best)),
                     f"≤ {target:g}" if target is not None else "—",
                     met(v, target)])
    return rows


def machine():
    model, family, mod = "?", "?", "?"
    try:
        for line in open("/proc/cpuinfo"):
            k, _, val = line.partition(":")
            k, val = k.strip(), val.strip()
            if k == "model name" and model == "?":
                model = val
            elif k == "cpu family" and family == "?":
                family = val
            elif k == "model" and mod == "?":
                mod = val
    except OSError:
        pass
    try:
        cc = subprocess.run(["gcc", "--version"], capture_output=True,
                            text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc = "?"
    return (f"{os.cpu_count()} CPUs (nproc), \"{model}\" "
            f"(CPUID family {family} model {mod}), Linux "
            f"{platform.release()}, {cc}")


def read_lines(path):
    try:
        return [ln.strip() for ln in open(path)]
    except OSError:
        return []


def source_state(ctx_dir):
    """The measured sources, as run.sh recorded them before building."""
    s = read_lines(os.path.join(ctx_dir, "source.txt"))
    if len(s) < 3:
        return "not recorded"
    head, changed, digest = s[0], s[1], s[2]
    if changed == "0":
        return f"commit {head}, clean tree"
    return (f"commit {head} **plus uncommitted changes**: {changed} "
            f"changed or new paths under src/, include/, CMakeLists.txt "
            f"(sha256 of their diff and new files: {digest})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", required=True)
    ap.add_argument("--peers", required=True)
    ap.add_argument("--out")
    ap.add_argument("--command", default="make bench")
    ap.add_argument("--peers-reused", default="0")
    a = ap.parse_args()
    F = Figures(a.ctx, a.peers)
    g = F.get
    L = []

    start = read_lines(os.path.join(a.ctx, "start.txt"))
    if len(start) >= 2:
        date, load = start[0] + " (start of the measurements)", start[1]
    else:
        now = datetime.datetime.now(datetime.timezone.utc)
        date, load = f"{now:%Y-%m-%d %H:%M} UTC (of this summary)", "?"
    L += ["# libctx benchmarks beside the peers", "",
          f"- Date: {date}",
          f"- Machine: {machine()}; load average at the start: {load} (it "
          "counts runnable threads: the wake benchmarks' bursts of up to "
          "10 000 threads keep it high for minutes after a run)",
          f"- Command: `{a.command}` (from the repository root)",
          f"- libctx: {source_state(a.ctx)}; Release build (`build-bench/`)",
          f"- Runs: libctx {F.ctx_runs}, peers {F.peer_runs}; every figure "
          "is the median over the runs (min..max in the last table)."]
    if a.peers_reused == "1":
        L.append("- **The peers' figures were reused from an earlier run "
                 "(SKIP_PEERS=1)**, not measured in this one.")
    else:
        L.append("- The peers (`../shared/peers/run.sh`: Go 1.19, C++20 "
                 "libstdc++, tokio-util, C floor) ran in the same invocation, "
                 "right after libctx.")
    L.append("")

    L += ["## Main table", "",
          "libctx is `bench_ctx` linked against `libctx.so`. \"best peer\" is "
          "the lowest of the Go, C++ and tokio figures in the row; the ratio "
          "is libctx / best peer (below 1: libctx is faster).", ""]
    head = ["operation", "libctx", "Go", "C++20", "tokio", "best peer",
            "libctx / best", "target", "met?"]
    L += table(head, compare_rows(F, MAIN))
    L += ["", "Go's poll cells are the lock-free `select { case <-Done(): "
          "default: }`; Go 1.19's `Err()`, which takes a mutex, is in "
          "brackets.", ""]

    L += ["## Memory", ""]
    L += table(head, compare_rows(F, MEM))
    c1, c2 = g("ctx", "mem.child.chunks", "B/live-child"), \
        g("ctx", "mem.child_timeout.chunks", "B/live-child")
    L += ["", "glibc `mallinfo2()` delta over 100 000 live children of one "
          "live root, divided by 100 000, as the C++ and tokio peers count "
          "(malloc chunk bytes, `uordblks`), plus memory in mmapped chunks "
          "(`hblkhd`): with deadlines the timer heap (8 B per armed timer, "
          "doubled as it grows) is large enough to be mmapped, and "
          "`uordblks` alone would miss it. `uordblks` alone: "
          f"{fmt(c1)} B cancel-only, {fmt(c2)} B with a deadline.", ""]

    L += ["## Wake-up of N threads blocked in `ctx_wait` vs the futex floor",
          "",
          "Time from `ctx_cancel` to the main thread's return from a futex "
          "wait that the last woken waiter ends. The target is libctx ≤ "
          f"{WAKE_TARGET}× the floor's `futex_wake_all.n=N` (`floor.c`, run "
          "in this invocation). \"raw futex, interleaved\" is the same "
          "measurement done by `bench_ctx` itself with plain `FUTEX_WAIT`"
          " waiters, alternating with the libctx repetitions. Peers for "
          "scale: Go and tokio wake goroutines/tasks, C++ wakes threads "
          "(`condition_variable_any` with a stop token).", ""]
    wh = ["waiters", "libctx total", "libctx per waiter",
          "floor futex_wake_all", "libctx / floor", "target", "met?",
          "raw futex, interleaved", "libctx / raw", "Go", "C++20", "tokio"]
    wrows = []
    for n, go, cpp, rust in WAKE:
        v = g("ctx", f"wake.n={n}.total", "ns")
        per = g("ctx", f"wake.n={n}", "ns/waiter")
        fl = g("floor", f"futex_wake_all.n={n}.total", "ns")
        raw = g("ctx", f"wake_futex_inline.n={n}.total", "ns")
        r = ratio(v, fl)
        wrows.append([str(n), fmt(v), fmt(per), fmt(fl), fmt_ratio(r),
                      f"≤ {WAKE_TARGET}×", met(r, WAKE_TARGET), fmt(raw),
                      fmt_ratio(ratio(v, raw))] +
                     [fmt(g(*k)) if k else "—" for k in (go, cpp, rust)])
    L += table(wh, wrows)
    L += ["", "Run by run (libctx's run i and the peers' run i are a minute "
          "or two apart; on this VM a wake-up of many threads is bimodal, "
          "and the raw futex column moves with libctx's):", ""]
    prows = []
    for n, *_ in WAKE:
        for i in range(1, max(F.ctx_runs, F.peer_runs) + 1):
            v = F.run_value(a.ctx, i, "ctx.txt", f"wake.n={n}.total", "ns")
            raw = F.run_value(a.ctx, i, "ctx.txt",
                              f"wake_futex_inline.n={n}.total", "ns")
            fl = F.run_value(a.peers, i, "floor.txt",
                             f"futex_wake_all.n={n}.total", "ns")
            prows.append([str(n), str(i), fmt(v), fmt(raw),
                          fmt_ratio(ratio(v, raw)), fmt(fl),
                          fmt_ratio(ratio(v, fl))])
    L += table(["waiters", "run", "libctx", "raw futex, interleaved",
                "libctx / raw", "floor futex_wake_all", "libctx / floor"],
               prows)
    L.append("")

    L += ["## `ctx_wait` cancel latency", "",
          "One thread parked in `ctx_wait(c, CTX_NO_DEADLINE)`; time from "
          "just before `ctx_cancel(c)` to the waiter's return (its own "
          "timestamp), 1000 samples per run. Reference: the floor's "
          "`futex_wake_to_return` (a raw `FUTEX_WAIT` waiter, median of 200).",
          ""]
    fw = g("floor", "futex_wake_to_return", "ns")
    fws = g("floor", "futex_wake_to_return.same_cpu", "ns")
    lrows = []
    for p in ("p50", "p99", "max"):
        v = g("ctx", f"latency.wait.{p}", "ns")
        lrows.append([p, fmt(v), fmt(fw) if p == "p50" else "",
                      fmt_ratio(ratio(v, fw)) if p == "p50" else ""])
    L += table(["percentile", "libctx", "floor futex_wake_to_return (median)",
                "libctx / floor"], lrows)
    L += ["", f"(The floor with both threads pinned to one CPU: {fmt(fws)}.)",
          ""]

    L += ["## Structured concurrency", "",
          "The sync layer (`bench_sync`, linked against `libctx.so`) beside "
          "Go 1.19's x/sync errgroup and semaphore and x/time/rate (the "
          "peers' `peers_test.go`, run by `../shared/peers/run.sh` in this "
          "invocation) and Go's channels (`bench/go/chan_test.go`, "
          "GOMAXPROCS=2, run right after `bench_sync` in each run). The "
          "ratio is libctx / Go (below 1: libctx is faster).", ""]
    L += table(["operation", "libctx", "Go", "ratio", "target", "met?"],
               sync_rows(F))
    L += ["", "Disturbance, run by run: the load average (1, 5, 15 min) "
          "just before `bench_sync`, and the share of the 2 CPUs that other "
          "processes (and the hypervisor) took while it ran, in its worst "
          "section (group, sem, rate, chan, firsterr). `bench/run.sh` runs "
          "it again, up to 3 times, while that share is above 5 %, and "
          "keeps the least disturbed attempt. (The load average counts "
          "runnable threads, including the bursts of 1000-10 000 threads of "
          "`bench_ctx`'s wake rows and of the first-error row.)", ""]
    drows = []
    for i in range(1, F.ctx_runs + 1):
        tries = [ln.split() for ln in read_lines(
            os.path.join(a.ctx, f"run{i}", "sync-attempts.txt")) if ln]
        tries = [t for t in tries if len(t) >= 2]
        if not tries:
            drows.append([str(i), "?", "?", "?"])
            continue
        best = min(tries, key=lambda t: float(t[1]))
        drows.append([str(i), " ".join(best[2:5]),
                      f"{100 * float(best[1]):.1f} %",
                      f"{best[0]} of {len(tries)}"
                      + (" (others: " + ", ".join(
                          f"{100 * float(t[1]):.0f} %" for t in tries
                          if t is not best) + ")" if len(tries) > 1 else "")])
    L += table(["run", "load average before", "others' CPU share, worst "
                "section", "attempt kept"], drows)
    L += ["", "Groups, run by run, with the round trip of a cache line "
          "between two threads measured just before them "
          "(`group.xcpu_round_trip`): on this VM it moves between ~100-150 "
          "and ~500-600 ns over minutes, and a group task costs at least "
          "one cache-line transfer each way between the submitter and the "
          "worker, so the group rows move with it.", ""]
    grows = []
    for i in range(1, F.ctx_runs + 1):
        grows.append([str(i)] + [fmt(F.run_value(a.ctx, i, "sync.txt", k, u))
                                 for k, u in (
                                     ("group.xcpu_round_trip", "ns"),
                                     ("group.nolimit", "ns/task"),
                                     ("group.limit=2", "ns/task"))])
    L += table(["run", "cross-CPU round trip [ns]", "no limit [ns/task]",
                "limit 2 [ns/task]"], grows)
    L.append("")
    L += ["Go's semaphore and errgroup allocate per operation (B/op, "
          "allocs/op in brackets); libctx's semaphore, limiter and channel "
          "operations allocate nothing. A libctx channel operation always "
          "takes a context (every blocking call is cancellable), so Go's "
          "figure for the same send/receive inside a `select` with "
          "`ctx.Done()` is given in brackets; the ratio is against plain "
          "Go channels.", ""]
    hp = F.vals.get(("ctx", "sem.contended.holds_per_handoff", "holds"))
    if hp:
        L += ["Contended semaphore: in `bench_sync`'s untimed check (2 "
              "threads × 10^6 holds of the semaphore of 1), a thread held it "
              f"{statistics.median(hp):.0f} times in a row on average "
              f"(runs: {', '.join(f'{x:.0f}' for x in hp)}) before the other "
              "got it: the fast path lets a releasing thread take the unit "
              "back while the other is still spinning, not yet queued. Go's "
              "semaphore hands the unit to its queued waiter at every "
              "release, so its row is a hand-over per operation; the two "
              "figures measure different schedules, and libctx's moves with "
              "how often the threads alternate.", ""]

    L += ["### First error vs the futex floor", "",
          "With threads, the first error has to wake the failing task's "
          "thread and then 1000 parked threads; Go wakes goroutines. "
          "\"raw futex, interleaved\" is the same event done by "
          "`bench_sync` with plain `FUTEX_WAIT` threads, alternating with "
          "the libctx repetitions (a thread on a trigger word, released, "
          "does `FUTEX_WAKE(INT_MAX)` on the word 1000 threads wait on; "
          "every thread counts down and the last wakes the main thread). "
          "The floor's rows are `floor.c`'s, from the peers' run: "
          "`futex_wake_all.n=1000` (1000 parked threads, one wake-all) and "
          "`futex_wake_to_return` (one thread).", ""]
    fe = g("ctx", "group.first_error", "ns")
    fraw = g("ctx", "group.first_error_futex_inline", "ns")
    fl = g("floor", "futex_wake_all.n=1000.total", "ns")
    fl1 = g("floor", "futex_wake_to_return", "ns")
    gofe = g("go", "ErrgroupFirstError", "ns/first-error-to-wait")
    L += table(["libctx", "raw futex, interleaved", "libctx / raw",
                "floor futex_wake_all n=1000", "floor futex_wake_to_return",
                "libctx / (sum of both floors)", "Go", "target"],
               [[fmt(fe), fmt(fraw), fmt_ratio(ratio(fe, fraw)), fmt(fl),
                 fmt(fl1),
                 fmt_ratio(ratio(fe, fl + fl1 if fl and fl1 else None)),
                 fmt(gofe), "≤ 100 µs"]])
    L += ["", "Run by run:", ""]
    frows = []
    for i in range(1, max(F.ctx_runs, F.peer_runs) + 1):
        v = F.run_value(a.ctx, i, "sync.txt", "group.first_error", "ns")
        raw = F.run_value(a.ctx, i, "sync.txt",
                          "group.first_error_futex_inline", "ns")
        flr = F.run_value(a.peers, i, "floor.txt",
                          "futex_wake_all.n=1000.total", "ns")
        gor = F.run_go_value(a.peers, i, "ErrgroupFirstError",
                             "ns/first-error-to-wait")
        frows.append([str(i), fmt(v), fmt(raw), fmt_ratio(ratio(v, raw)),
                      fmt(flr), fmt(gor)])
    L += table(["run", "libctx", "raw futex, interleaved", "libctx / raw",
                "floor futex_wake_all n=1000", "Go"], frows)
    L.append("")

    L += ["## The OS boundary", "",
          "`bench_os` (linked against `libctx.so`): subprocesses beside Go "
          "1.19's `os/exec` (`bench/go/exec_test.go`, GOMAXPROCS=2, run "
          "right after `bench_os` in each run) and the floor, "
          "`posix_spawn` + `waitpid`; the kill-after precision; and what "
          "`ctx_read` adds to a read that finds its data ready.", ""]
    L += table(["operation", "libctx", "Go", "ratio", "floor", "target",
                "met?"], os_rows(F))
    L += ["", "A `ctx_read` or `ctx_write` that finds its descriptor ready is "
          "one system call (`preadv2`/`pwritev2` with `RWF_NOWAIT`, no "
          "`poll` first): counted with `strace -c` over 5000 of each, on a "
          "pipe and a socket, with and without a deadline, by the test "
          "`t_io_syscalls` in `make check`. The difference from `read` "
          "is that call's own cost.", ""]

    L += ["## ctxrun and the demo server", "",
          "`bench/bench_ctxrun.sh`: `ctxrun 10 true` against coreutils "
          "`timeout 10 true`, start to exit, with hyperfine (400 runs of "
          "each, in 4 rounds whose order alternates). "
          "`bench/bench_httpd.sh`: the demo server (`examples/httpd`) "
          "beside a Go 1.19 `net/http` server doing the same work "
          "(`bench/go/httpd`: FNV-1a over 16 KiB under a 2 s per-request "
          "deadline), `wrk -t2 -c64` for 10 s on `/work`, and the time "
          "from SIGTERM to exit with 64 open `/stream` connections; "
          "medians of the script's runs.", ""]
    ct, tt = g("ctx", "ctxrun.true", "ns"), g("ctx", "timeout.true", "ns")
    rows = [["`ctxrun 10 true` [ns, start to exit] (peer: `timeout 10 "
             "true`)", fmt(ct), fmt(tt), fmt_ratio(ratio(ct, tt)),
             "≤ 1.1×", met(ratio(ct, tt), 1.1)]]
    for label, name, unit, better in [
            ("demo server: requests/s, `wrk -t2 -c64` (peer: Go net/http)",
             "requests_per_s", "req/s", "higher"),
            ("demo server: p99 latency [ms]", "p99_latency", "ms", "lower"),
            ("demo server: SIGTERM to exit, 64 open streams [ms]",
             "shutdown_64_streams", "ms", "lower")]:
        v = g("ctx", f"httpd.libctx.{name}", unit)
        gv = g("ctx", f"httpd.go.{name}", unit)
        cell = (lambda x: "—" if x is None else f"{x:.1f}"
                if unit == "ms" else f"{x:.0f}")
        rows.append([label, cell(v), cell(gv), fmt_ratio(ratio(v, gv)),
                     "—", "—"])
    L += table(["operation", "libctx", "peer", "ratio", "target", "met?"],
               rows)
    L.append("")

    L += ["## Shared vs static library", "",
          "The same program linked against `libctx.a` (`bench_ctx_static`)."
          " The difference is the cost of calls through the PLT (and of "
          "the library's own calls to its exported functions, which the "
          "shared build cannot inline or bind directly).", ""]
    srows = []
    for label, mine, *_ in MAIN[:8]:
        v = g("ctx", mine[0], mine[1])
        s = g("ctx", "static." + mine[0], mine[1])
        srows.append([label, fmt(v), fmt(s), fmt_ratio(ratio(v, s))])
    L += table(["operation", "libctx.so", "libctx.a", "so / a"], srows)
    L.append("")

    L += ["## How measured", "",
          "- Harness `bench/bench.h`, the peers' methodology: a hot loop is "
          "run with the iteration count doubled (or scaled) until one run "
          "takes ≥ 0.5 s, figure = total / iterations; two-thread rows are "
          "wall time / operations of both threads (Go's `RunParallel`); "
          "events are the median over repetitions. Results print as "
          "`RESULT name value unit`; raw outputs in "
          "`build-bench/results/run*/` and `build/peers/run*/`.",
          "- poll: `ctx_done(c)`, the header's inline acquire load, on a "
          "live child of a live root, the result kept opaque (`KEEP`) each "
          "iteration. pairs: a fresh context per iteration, each call "
          "checked; \"child\" has a live cancellable parent; \"fd\" calls "
          "`ctx_fd` (an eventfd: create, write on cancel, close on release).",
          "- propagation: root + n children (flat) or a chain of 1000, built "
          "untimed; only `ctx_cancel(root)` is timed; every descendant is "
          "checked done (`ECANCELED`) and everything released, untimed. "
          "Repetitions as the C++ peer (200; 40 at 10^4; 20 at 10^5), after "
          "one warm-up. Go materialises every Done channel; a libctx "
          "context needs nothing extra to be observable.",
          "- wake: N threads (64 KiB stacks) announce themselves, then call "
          "`ctx_wait`; the main thread waits for all to announce, then "
          "sleeps 2 ms + 2 µs × N, as the peers do (the untimed warm-up "
          "repetition also checks in `/proc/self/task/*/stat` that every "
          "waiter is then asleep; the timed ones do not, as reading `/proc` "
          "slowed the next wake-up of one thread by ~2 µs, raw futex "
          "waiters as much as libctx's). "
          "Timed: `ctx_cancel` to the main thread's return from `FUTEX_WAIT`"
          " ended by the last waiter; woken threads park again, so thread "
          "exit is not timed. 200/40/15 repetitions (as `floor.c`).",
          "- latency: one reusable waiter thread, a fresh context per "
          "sample, 2 ms of sleep before each cancel (checked through "
          "`/proc` in 20 uncounted warm-up samples).",
          "- memory: see above. Peer rows are defined in "
          "`../shared/peers/BASELINES.md`.",
          "- groups: each iteration is one group as Go's `benchErrgroup` "
          "(parent `ctx_background()`, 1000 × `ctx_group_go` of a task "
          "that returns 0, `ctx_group_wait` checked 0, the group's context "
          "checked done, `ctx_group_free`); ns/task = ns per group / 1000. "
          "Before timing, 20 groups of counting tasks check that every task "
          "runs exactly once, sees the context live, and that no more than "
          "2 run at once under the limit.",
          "- first error: a fresh group per repetition; 1000 tasks announce "
          "themselves and park in `ctx_wait(c, CTX_NO_DEADLINE)` on the "
          "group's context, a 1001st parks on a futex word and returns EIO "
          "once it is released; after all have announced, 3 ms + 2 µs per "
          "task to park (Go: 3 ms; an untimed warm-up also checks in "
          "`/proc` that every task thread is asleep). Timed: releasing the "
          "trigger (store + `FUTEX_WAKE`) to `ctx_group_wait` returning; "
          "checked: it returns EIO and all 1000 siblings saw their context "
          "cancelled. Median of 20 (Go: `-benchtime 20x`), after one "
          "warm-up that also grows the pool to 1001 threads.",
          "- semaphore: `ctx_sem_acquire(s, ctx_background(), 1)` + "
          "`ctx_sem_release(s, 1)` (Go: `Acquire(context.Background(), 1)` "
          "+ `Release(1)`), capacity 1 (1 thread; 2 threads) or 2^20 (2 "
          "threads). Before timing, 2 threads × 10^6 holds check that "
          "the semaphore of 1 never has two holders.",
          "- limiter: `ctx_limiter_new(1e10, 2^30)` as Go's "
          "`NewLimiter(1e10, 1<<30)`: a token is always there but the "
          "refill arithmetic and a clock read run on every call; every "
          "`ctx_limiter_allow` is checked true, every `ctx_limiter_wait` "
          "(on a live child of `ctx_background()`) checked 0.",
          "- channels: 8-byte elements (Go: `chan int`), a live "
          "cancellable context on every libctx call; a producer thread "
          "(Go: goroutine) started inside the timed run sends 0..n-1, the "
          "calling thread receives and checks each value in order (for "
          "select: evens on one channel, odds on the other, each in "
          "order); ns per element; each row first moves 100 000 elements "
          "untimed.",
          "- Wake and latency figures on a 2-vCPU VM move by several × "
          "between runs (see the peers' caveats): compare them only within "
          "one run, as the ratios here do.", ""]

    L += ["## All libctx figures: median [min .. max] over runs", ""]
    arows = []
    for (src, name, unit) in sorted(F.vals):
        if src != "ctx":
            continue
        v = F.vals[(src, name, unit)]
        arows.append([name, unit, fmt(statistics.median(v)), fmt(min(v)),
                      fmt(max(v))])
    L += table(["name", "unit", "median", "min", "max"], arows)
    L.append("")

    text = "\n".join(L)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
