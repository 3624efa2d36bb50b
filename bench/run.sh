#!/bin/sh
# SPDX-License-Identifier: MIT
# make bench: build the libctx benchmarks (Release, in build-bench/), run
# them RUNS times (default 3), run the peers (Go, C++20, tokio, the C floor:
# ../shared/peers/run.sh, results in build/peers/) RUNS times in the same
# invocation, and write bench/RESULTS.md with the medians and the ratios.
#
#   make bench                 everything (several minutes)
#   RUNS=1 make bench          a quick look
#   SKIP_PEERS=1 make bench    reuse the peers' results already in build/peers
#
# Raw outputs: build-bench/results/run<i>/ (libctx), build/peers/run<i>/.
set -eu
cd "$(dirname "$0")/.."

sh scripts/setup.sh
RUNS=${RUNS:-3}
SKIP_PEERS=${SKIP_PEERS:-0}
OUT=build-bench/results
PEERS=build/peers

rm -rf "$OUT"
mkdir -p "$OUT"
{
    date -u '+%Y-%m-%d %H:%M UTC'
    cut -d' ' -f1-3 /proc/loadavg
} >"$OUT/start.txt"
# What is measured: the commit, and the uncommitted library sources if any.
{
    git rev-parse --short HEAD 2>/dev/null || echo unknown
    git status --porcelain -- src include CMakeLists.txt 2>/dev/null | wc -l
    {
        git diff HEAD -- src include CMakeLists.txt
        git ls-files -o --exclude-standard -- src include | xargs -r cat
    } 2>/dev/null | sha256sum | cut -c1-12
} >"$OUT/source.txt"

echo "bench: building (Release, build-bench/)" >&2
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCTX_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench --target bench_ctx bench_ctx_static >/dev/null
i=1
while [ "$i" -le "$RUNS" ]; do
    d=$OUT/run$i
    mkdir -p "$d"
    echo "bench: run $i/$RUNS: libctx" >&2
    ./build-bench/bench/bench_ctx >"$d/ctx.txt"
    ./build-bench/bench/bench_ctx_static poll pair >"$d/ctx-static.txt"
    i=$((i + 1))
done

if [ "$SKIP_PEERS" = 1 ]; then
    if [ ! -d "$PEERS/run1" ]; then
        echo "bench: SKIP_PEERS=1, but there is no $PEERS/run1" >&2
        exit 1
    fi
    echo "bench: reusing the peers' results in $PEERS/" >&2
else
    # Stale run<i> of an earlier, longer series would be read as ours.
    rm -rf "$PEERS"/run*
    echo "bench: peers (../shared/peers/run.sh; their table: $PEERS/table.md)" >&2
    RESULTS=$PWD/$PEERS RUNS=$RUNS sh ../shared/peers/run.sh >/dev/null
fi

cmd="RUNS=$RUNS make bench"
[ "$SKIP_PEERS" != 1 ] || cmd="SKIP_PEERS=1 $cmd"
python3 bench/summarize.py --ctx "$OUT" --peers "$PEERS" \
    --out bench/RESULTS.md --command "$cmd" --peers-reused "$SKIP_PEERS"
