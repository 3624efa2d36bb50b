#!/bin/sh
# SPDX-License-Identifier: MIT
# make demo: an HTTP server on libctx shut down by SIGTERM in the middle
# of real load, losing nothing.
#
#   examples/httpd/demo.sh BUILD_DIR
#
# Starts build/examples/httpd/httpd on a free loopback port; drives it
# with wrk (2 threads, 64 keep-alive connections on /work), 8 Server-Sent
# Events clients on /stream and a load balancer's health probe on
# /healthz every 100 ms (httpload); sends SIGTERM mid-load; prints the
# server's timeline and the clients' counts, and a last line that says
# whether anything was lost: every request the server accepted got a
# complete response (a 503 only from /healthz during the lame duck),
# every stream ended with its closing event. Exit status 1 if not.
set -eu

BUILD=${1:-build}
BIN=$BUILD/examples/httpd
TERM_AFTER=${DEMO_TERM_AFTER:-2.5}
WRK_SECS=${DEMO_WRK_SECS:-6}
STREAMS=8
. "$(dirname "$0")/serve.sh"

for p in "$BIN/httpd" "$BIN/httpload"; do
    [ -x "$p" ] || { echo "demo: $p not built (libhttp-parser-dev?)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "demo: wrk is not installed" >&2; exit 1; }

now() { date +%s.%N; }

echo "== libctx demo: SIGTERM to an HTTP/1.1 server under load =="
start_server --lame-duck-ms 1000 --drain-ms 5000 --force-ms 2000
url=http://127.0.0.1:$port
t0=$(now)
echo "server: pid $server on $url; lame duck 1 s, drain budget 5 s, force budget 2 s"
echo "load:   wrk -t2 -c64 -d${WRK_SECS}s on /work (bounded CPU work per request),"
echo "        $STREAMS clients on /stream (Server-Sent Events, a tick every 100 ms),"
echo "        a health probe on /healthz every 100 ms; SIGTERM after ${TERM_AFTER} s"
echo

"$BIN/httpload" --port "$port" --streams "$STREAMS" --health-ms 100 \
    --duration-ms 30000 >"$tmp/clients.out" 2>&1 &
clients=$!
wrk -t2 -c64 -d"${WRK_SECS}s" --latency "$url/work" >"$tmp/wrk.out" 2>&1 &
wrk=$!

sleep "$TERM_AFTER"
t_term=$(now)
kill -TERM "$server"
status=0
wait "$server" || status=$?
t_exit=$(now)
server=""
wait "$clients" || true
wait "$wrk" || true

echo "--- timeline (seconds since the load started) ---"
# The server's lines count from the SIGTERM: shift them, merge, sort.
off=$(echo "$t0 $t_term" | awk '{print $2 - $1}')
{
    printf '%.3f\tload starts\n' 0
    printf '%.3f\tSIGTERM sent to the server\n' "$off"
    awk -v off="$off" '
        /^\[ *[-+][0-9.]+ s\]/ {
            t = $0; sub(/^\[ */, "", t); sub(/ s\].*/, "", t)
            rest = $0; sub(/^\[[^]]*\] */, "", rest)
            printf "%.3f\tserver:  %s\n", t + off, rest
        }' "$tmp/server.out"
    awk -v off="$off" '
        /^shutdown: \+/ {
            t = $2; sub(/^\+/, "", t)
            rest = $0; sub(/^shutdown: \+[0-9.]+ s +/, "", rest)
            printf "%.3f\tmanager: %s\n", t + off, rest
        }' "$tmp/server.err"
    echo "$t0 $t_exit $status" |
        awk '{printf "%.3f\tthe server exited with status %s\n", $2 - $1, $3}'
} | sort -s -t "$(printf '\t')" -k1,1n |
    awk -F '\t' '{printf "[%+7.3f s] %s\n", $1, $2}'
echo
echo "--- drain latency: time from the drain to each connection closing ---"
sed -n '/^drain latency/,/^summary/p' "$tmp/server.out" | sed '1d;$d'
echo
echo "--- wrk (its socket errors after the SIGTERM are connects refused by the closed listener) ---"
sed -n '/requests in/p;/Requests\/sec/p;/Latency  /p;/50%/p;/99%/p;/Socket errors/p;/Non-2xx/p' "$tmp/wrk.out"
echo
echo "--- counts ---"
sed -n 's/^summary: /server:  /p' "$tmp/server.out"
grep -E '^(streams|health):' "$tmp/clients.out" | sed 's/^/clients: /'

# ------------------------------------------------------------ verdict
s=$tmp/server.out
c=$tmp/clients.out
req=$(field requests "$s")
complete=$(field complete "$s")
failed=$(field failed "$s")
work200=$(field work200 "$s")
h503=$(field health503 "$s")
sclean=$(field streams_clean "$s")
scut=$(field streams_cut "$s")
idle=$(field closed_idle "$s")
unread=$(field closed_unread "$s")
wrk_req=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$tmp/wrk.out")
wrk_read=$(sed -n 's/.*read \([0-9]*\), write.*/\1/p' "$tmp/wrk.out")
wrk_write=$(sed -n 's/.*write \([0-9]*\), timeout.*/\1/p' "$tmp/wrk.out")
wrk_timeout=$(sed -n 's/.*timeout \([0-9]*\).*/\1/p' "$tmp/wrk.out")
wrk_non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/wrk.out")
h_ok=$(field ok "$c")
h_un=$(field unavailable "$c")
c_lost=$(field lost "$c")
c_clean=$(field clean "$c")
c_cut=$(field cut "$c")
c_open=$(field opened "$c")

lost=""
check() { # check DESCRIPTION TEST...
    d=$1
    shift
    "$@" || lost="$lost; $d"
}
eq() { [ "${1:-x}" = "${2:-y}" ]; }
check "server exit status $status" eq "$status" 0
check "server: $failed failed responses" eq "$failed" 0
check "server: $req requests, $complete complete responses" eq "$req" "$complete"
check "wrk: $wrk_req responses, the server sent $work200" eq "$wrk_req" "$work200"
check "wrk: ${wrk_timeout:-0} timeouts" eq "${wrk_timeout:-0}" 0
check "wrk: ${wrk_non2xx:-0} non-2xx responses" eq "${wrk_non2xx:-0}" 0
# wrk counts a refused non-blocking connect as a write error. Its write
# errors are those reconnects only if the server never closed a
# connection that had a request coming or unread: then no request of
# wrk's was written to a connection the server had given up.
check "server: $idle connections closed idle in the drain" eq "$idle" 0
check "server: $unread connections closed with unread bytes" eq "$unread" 0
check "clients: $c_lost responses lost" eq "$c_lost" 0
check "health: the client saw $h_un 503s, the server sent $h503" eq "$h_un" "$h503"
check "streams: $c_clean of $STREAMS ended with their closing event" eq "$c_clean" "$STREAMS"
check "streams opened: $c_open" eq "$c_open" "$STREAMS"
check "streams cut: $c_cut (client) $scut (server)" eq "$c_cut$scut" 00
check "server streams closed cleanly: $sclean" eq "$sclean" "$STREAMS"
accounted=$(( ${wrk_req:-0} + ${h_ok:-0} + ${h_un:-0} + ${c_clean:-0} ))
check "accounted for $accounted of $req requests" eq "$accounted" "$req"
# So a read error of wrk's can only be a connection the kernel queued and
# reset when the listener closed: the server read no request it did not
# answer (requests = complete), and wrk got every one of them.

readnote=""
[ "${wrk_read:-0}" = 0 ] ||
    readnote=", its $wrk_read read errors connections reset in the accept queue, never read"
echo
if [ -z "$lost" ]; then
    echo "NOTHING LOST: $req requests accepted, $complete complete" \
        "responses: $wrk_req to wrk on /work (exactly what wrk received)," \
        "$h_ok + $h_un health checks ($h_un x 503 during the lame duck)," \
        "$c_clean/$STREAMS streams ended with their closing event; 0 cut," \
        "0 timeouts; wrk's $wrk_write write errors are its reconnects" \
        "refused by the closed listener$readnote."
    exit 0
fi
echo "LOST:${lost#;}"
echo "(raw outputs follow)"
cat "$tmp/server.out" "$tmp/server.err" "$tmp/clients.out" "$tmp/wrk.out"
exit 1
