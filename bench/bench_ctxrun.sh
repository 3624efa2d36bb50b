#!/bin/sh
# SPDX-License-Identifier: MIT
# ctxrun's own cost beside coreutils timeout(1): `ctxrun 10 true` against
# `timeout 10 true`, start to exit, measured with hyperfine (warm-up, then
# ROUNDS rounds of RUNS/ROUNDS runs of each, the order swapped every round
# so that a change of load on a shared machine hits both alike), or, where
# hyperfine is missing, with a small C loop (posix_spawn, waitpid,
# CLOCK_MONOTONIC) in the same rounds. Writes OUTDIR/ctxrun.txt:
#
#   RESULT ctxrun.true <median ns> ns
#   RESULT timeout.true <median ns> ns
#
# and '#' lines saying how (the tool, the runs, the load, the ratio).
#
#   bench/bench_ctxrun.sh OUTDIR [CTXRUN]
#
# Without CTXRUN, ctxrun is built in build-bench/ (Release), as make bench
# builds the library. RUNS (default 400) and ROUNDS (default 4);
# NO_HYPERFINE=1 takes the C loop even where hyperfine is.
set -eu
[ $# -ge 1 ] || {
    echo "usage: bench/bench_ctxrun.sh OUTDIR [CTXRUN]" >&2
    exit 2
}
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
RUNS=${RUNS:-400}
ROUNDS=${ROUNDS:-4}
per=$(((RUNS + ROUNDS - 1) / ROUNDS))

if [ $# -ge 2 ]; then
    ctxrun=$2
else
    echo "bench_ctxrun: building ctxrun (Release, build-bench/)" >&2
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCTX_BUILD_TESTS=OFF >/dev/null
    cmake --build build-bench --target ctxrun >/dev/null
    ctxrun=build-bench/tools/ctxrun/ctxrun
fi
ctxrun=$(cd "$(dirname "$ctxrun")" && pwd)/$(basename "$ctxrun")
timeout=$(command -v timeout) || {
    echo "bench_ctxrun: no timeout(1) to compare with" >&2
    exit 1
}
raw=$out/ctxrun-raw
rm -rf "$raw"
mkdir -p "$raw"

load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)

if [ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null; then
    how="hyperfine $(hyperfine --version | cut -d' ' -f2) -N, warm-up 20 each round"
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        if [ $((i % 2)) = 1 ]; then
            set -- "$timeout 10 true" "$ctxrun 10 true"
        else
            set -- "$ctxrun 10 true" "$timeout 10 true"
        fi
        hyperfine -N --warmup 20 --runs "$per" --style none \
            --export-json "$raw/round$i.json" "$@" >/dev/null 2>&1
        i=$((i + 1))
    done
    python3 - "$raw" "$ctxrun" "$timeout" >"$raw/medians" <<'EOF'
import json, os, statistics, sys
raw, ctxrun, timeout = sys.argv[1:4]
times = {"ctxrun": [], "timeout": []}
for f in sorted(os.listdir(raw)):
    if f.endswith(".json"):
        for r in json.load(open(os.path.join(raw, f)))["results"]:
            key = "ctxrun" if r["command"].startswith(ctxrun) else "timeout"
            times[key] += r["times"]
for k in ("ctxrun", "timeout"):
    print(k, round(statistics.median(times[k]) * 1e9), len(times[k]))
EOF
else
    if [ -n "${NO_HYPERFINE:-}" ]; then
        why="NO_HYPERFINE is set"
    else
        why="hyperfine is not installed"
    fi
    how="a C loop (posix_spawn, waitpid, CLOCK_MONOTONIC; $why)"
    cat >"$raw/spawnbench.c" <<'EOF'
/* Run argv[2..] argv[1] times; print each run's ns, start to reaped. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
int main(int argc, char **argv)
{
    int n = atoi(argv[1]), st;
    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        pid_t pid;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ) != 0)
            return 1;
        waitpid(pid, &st, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%lld\n", (b.tv_sec - a.tv_sec) * 1000000000LL +
                             (b.tv_nsec - a.tv_nsec));
    }
    return 0;
}
EOF
    cc -O2 -o "$raw/spawnbench" "$raw/spawnbench.c"
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        "$raw/spawnbench" 20 "$timeout" 10 true >/dev/null
        "$raw/spawnbench" 20 "$ctxrun" 10 true >/dev/null
        if [ $((i % 2)) = 1 ]; then
            "$raw/spawnbench" "$per" "$timeout" 10 true >>"$raw/timeout.ns"
            "$raw/spawnbench" "$per" "$ctxrun" 10 true >>"$raw/ctxrun.ns"
        else
            "$raw/spawnbench" "$per" "$ctxrun" 10 true >>"$raw/ctxrun.ns"
            "$raw/spawnbench" "$per" "$timeout" 10 true >>"$raw/timeout.ns"
        fi
        i=$((i + 1))
    done
    for k in ctxrun timeout; do
        printf '%s %s %s\n' "$k" \
            "$(sort -n "$raw/$k.ns" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}')" \
            "$(wc -l <"$raw/$k.ns")"
    done >"$raw/medians"
fi

c=$(awk '$1 == "ctxrun" {print $2}' "$raw/medians")
t=$(awk '$1 == "timeout" {print $2}' "$raw/medians")
n=$(awk '$1 == "ctxrun" {print $3}' "$raw/medians")
{
    echo "# ctxrun 10 true vs timeout 10 true, start to exit; median of $n runs each"
    echo "# measured with $how; $ROUNDS rounds, order swapped each round"
    echo "# ctxrun: $ctxrun ($("$ctxrun" --version))"
    echo "# timeout: $timeout ($("$timeout" --version | head -n 1))"
    echo "# load average: $load_start at the start, $(load) at the end"
    echo "# ratio ctxrun / timeout: $(awk -v c="$c" -v t="$t" 'BEGIN {printf "%.3f", c / t}') (target <= 1.1)"
    echo "RESULT ctxrun.true $c ns"
    echo "RESULT timeout.true $t ns"
} >"$out/ctxrun.txt"
cat "$out/ctxrun.txt"
