#!/bin/sh
# SPDX-License-Identifier: MIT
# make bench: build the libctx benchmarks (Release, in build-bench/) and
# Go's channel benchmarks (bench/go, offline, GOPATH mode, as the peers),
# run them RUNS times (default 3; Go's channels right after bench_sync in
# each run), run the peers (Go, C++20, tokio, the C floor:
# ../shared/peers/run.sh, results in build/peers/) RUNS times in the same
# invocation, and write bench/RESULTS.md with the medians and the ratios.
#
#   make bench                 everything (several minutes)
#   RUNS=1 make bench          a quick look
#   SKIP_PEERS=1 make bench    reuse the peers' results already in build/peers
#
# Raw outputs: build-bench/results/ (ctxrun.txt, httpd.txt) and its
# run<i>/ (libctx: ctx.txt, ctx-static.txt,
# sync.txt, sync-attempts.txt, os.txt; Go's channels and subprocesses:
# go-chan.txt, go-exec.txt), build/peers/run<i>/.
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
cmake --build build-bench --target bench_ctx bench_ctx_static bench_sync \
    bench_os >/dev/null
# Go's channels, built as ../shared/peers/run.sh builds the Go peers.
GOCHAN=$PWD/build-bench/bin/go_chan.test
rm -f "$GOCHAN"
if command -v go >/dev/null 2>&1; then
    mkdir -p build-bench/bin
    (cd bench/go && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
        go test -c -o "$GOCHAN" .)
else
    echo "bench: no go (apt-get install golang-go): no Go channel rows" >&2
fi
i=1
while [ "$i" -le "$RUNS" ]; do
    d=$OUT/run$i
    mkdir -p "$d"
    echo "bench: run $i/$RUNS: libctx" >&2
    ./build-bench/bench/bench_ctx >"$d/ctx.txt"
    ./build-bench/bench/bench_ctx_static poll pair >"$d/ctx-static.txt"
    # bench_sync's two-thread rows need both CPUs. It reports the share of
    # the machine others took during each of its sections; if one is above
    # 5%, wait and run it again (up to 3 attempts) and keep the attempt
    # whose worst section was the least disturbed.
    echo "bench: run $i/$RUNS: libctx sync layer, Go channels" >&2
    : >"$d/sync-attempts.txt"
    a=1
    while :; do
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        ./build-bench/bench/bench_sync >"$d/sync.try$a.txt"
        share=$(awk '$2 ~ /^others_cpu_share\./ && $3 > m { m = $3 }
            END { printf "%.3f\n", m }' "$d/sync.try$a.txt")
        echo "$a $share $load" >>"$d/sync-attempts.txt"
        if awk -v s="$share" 'BEGIN { exit !(s <= 0.05) }' || [ "$a" -ge 3 ]
        then
            break
        fi
        echo "bench: others took $share of the machine in a section;" \
            "again in 30 s" >&2
        sleep 30
        a=$((a + 1))
    done
    best=$(sort -k2,2g "$d/sync-attempts.txt" | head -n 1)
    mv "$d/sync.try${best%% *}.txt" "$d/sync.txt"
    rm -f "$d"/sync.try*.txt
    if [ -x "$GOCHAN" ]; then
        GOMAXPROCS=2 "$GOCHAN" -test.run '^$' -test.bench '^BenchmarkChan' \
            -test.benchmem -test.benchtime 1s >"$d/go-chan.txt"
    fi
    echo "bench: run $i/$RUNS: libctx OS layer, Go's exec" >&2
    ./build-bench/bench/bench_os >"$d/os.txt"
    if [ -x "$GOCHAN" ]; then
        GOMAXPROCS=2 "$GOCHAN" -test.run '^$' -test.bench '^BenchmarkExec' \
            -test.benchtime 1s >"$d/go-exec.txt"
    fi
    i=$((i + 1))
done

# ctxrun beside timeout(1), and the demo server beside Go's net/http: each
# script repeats its own measurement (ctxrun: 400 runs of each in 4
# rounds; httpd: RUNS runs) and writes its medians at the top of $OUT.
echo "bench: ctxrun beside timeout" >&2
RUNS=400 sh bench/bench_ctxrun.sh "$OUT" >/dev/null
if command -v go >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1; then
    echo "bench: the demo server beside Go's net/http" >&2
    RUNS=$RUNS sh bench/bench_httpd.sh "$OUT" >/dev/null
else
    echo "bench: no go or wrk: no demo server rows" >&2
fi

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
