#!/bin/sh
# SPDX-License-Identifier: MIT
# The demo server beside Go's net/http doing the same work:
#  - requests/s and p99 latency under wrk -t2 -c64 on /work (FNV-1a over
#    16 KiB under a 2 s per-request deadline, both servers);
#  - shutdown time, SIGTERM to exit, with 64 open /stream connections
#    (Server-Sent Events that each end with a closing event; no lame duck).
#
#   bench/bench_httpd.sh OUTDIR
#
# Writes "RESULT <name> <value> <unit>" lines to OUTDIR/httpd.txt (each
# figure the median of RUNS runs, default 3) and the raw outputs beside
# it. Builds libctx's server in build-bench/ (Release) and the Go server
# offline (GO111MODULE=off, standard library only). Needs wrk and go.
set -eu

OUT=${1:?usage: bench_httpd.sh OUTDIR}
RUNS=${RUNS:-3}
SECS=${WRK_SECS:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/httpd-raw
mkdir -p "$RAW"

command -v wrk >/dev/null || { echo "bench_httpd: wrk missing" >&2; exit 1; }
command -v go >/dev/null || { echo "bench_httpd: go missing" >&2; exit 1; }

echo "bench_httpd: building (Release, build-bench/) and the Go server" >&2
(
    cd "$ROOT"
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCTX_BUILD_TESTS=OFF >/dev/null
    cmake --build build-bench --target httpd httpload >/dev/null
)
BIN=$ROOT/build-bench/examples/httpd
(cd "$HERE/go/httpd" && GO111MODULE=off GOFLAGS= go build -o "$RAW/go_httpd" .)

. "$ROOT/examples/httpd/serve.sh" # tmp, cleanup, start_server

# start NAME: start that server on a free port; sets server and port.
start() {
    rm -f "$tmp/port"
    if [ "$1" = libctx ]; then
        start_server --lame-duck-ms 0 --drain-ms 10000
        return
    fi
    "$RAW/go_httpd" -port 0 -port-file "$tmp/port" >"$tmp/server.out" 2>&1 &
    server=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1))
        [ "$i" -lt 200 ] || { echo "bench_httpd: go did not start" >&2; exit 1; }
        sleep 0.05
    done
    port=$(cat "$tmp/port")
}

stop() {
    kill -TERM "$server"
    wait "$server" || true
    server=""
}

# wrk's "99%    2.20ms" (or us, s) in milliseconds
to_ms() {
    awk '{v = $0; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
          if (u == "us") v /= 1000; else if (u == "s") v *= 1000;
          printf "%.3f\n", v}'
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

ns() { date +%s%N; }

for name in libctx go; do
    : >"$tmp/rps.$name"
    : >"$tmp/p99.$name"
    : >"$tmp/shut.$name"
    r=1
    while [ "$r" -le "$RUNS" ]; do
        echo "bench_httpd: $name, run $r/$RUNS" >&2
        # Throughput and latency.
        start "$name"
        wrk -t2 -c64 -d2s "http://127.0.0.1:$port/work" >/dev/null 2>&1
        wrk -t2 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$port/work" \
            >"$RAW/wrk.$name.$r.txt" 2>&1
        stop
        sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$RAW/wrk.$name.$r.txt" \
            >>"$tmp/rps.$name"
        sed -n 's/^ *99% *\([0-9.]*[a-z]*\).*/\1/p' "$RAW/wrk.$name.$r.txt" |
            to_ms >>"$tmp/p99.$name"
        # Shutdown with 64 open streams.
        start "$name"
        "$BIN/httpload" --port "$port" --streams 64 --duration-ms 60000 \
            >"$RAW/streams.$name.$r.txt" 2>&1 &
        clients=$!
        sleep 1
        t0=$(ns)
        kill -TERM "$server"
        wait "$server" || true
        t1=$(ns)
        server=""
        wait "$clients" || true
        if ! grep -q "opened=64 clean=64 cut=0" "$RAW/streams.$name.$r.txt"; then
            echo "bench_httpd: $name: streams not all closed cleanly" >&2
            cat "$RAW/streams.$name.$r.txt" >&2
            exit 1
        fi
        echo "$t0 $t1" | awk '{printf "%.3f\n", ($2 - $1) / 1e6}' >>"$tmp/shut.$name"
        r=$((r + 1))
    done
done

{
    for name in libctx go; do
        echo "RESULT httpd.$name.requests_per_s $(median <"$tmp/rps.$name") req/s"
        echo "RESULT httpd.$name.p99_latency $(median <"$tmp/p99.$name") ms"
        echo "RESULT httpd.$name.shutdown_64_streams $(median <"$tmp/shut.$name") ms"
    done
} | tee "$OUT/httpd.txt"
