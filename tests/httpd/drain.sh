#!/bin/sh
# SPDX-License-Identifier: MIT
# The demo's scenario, shorter and with its own client (no wrk): SIGTERM
# while 8 keep-alive connections, 4 streams and a health probe run; every
# count checked exactly, on both sides.
#   drain.sh BIN_DIR
set -u
BIN=$1
. "$(dirname "$0")/common.sh"

start_server --lame-duck-ms 300 --drain-ms 5000 --force-ms 2000 \
    --stream-interval-ms 20
"$BIN/httpload" --port "$port" --conns 8 --streams 4 --health-ms 20 \
    --duration-ms 30000 --term "$server" --term-after-ms 400 \
    >"$tmp/clients.out" 2>&1
crc=$?
status=0
wait "$server" || status=$?
server=""
s=$tmp/server.out
c=$tmp/clients.out

expect "server exit status" "$status" 0
expect "client exit status" "$crc" 0
expect "client: responses lost" "$(field lost "$c")" 0
expect "client: /work sent = complete + unanswered" "$(field sent "$c")" \
    "$(( $(field complete "$c") + $(field unanswered "$c") ))"
expect "client: /work all 200" "$(field status_200 "$c")" "$(field complete "$c")"
expect "server /work 200 = client's" "$(field work200 "$s")" "$(field status_200 "$c")"
[ "$(field closed_by_server "$c")" -ge 8 ] 2>/dev/null
expect "each connection closed by the server after a response (Connection: close)" "$?" 0
expect "reconnects refused by the closed listener" "$(field refused "$c")" 8
expect "client: connection errors" "$(field errors "$c")" 0
expect "server: failed responses" "$(field failed "$s")" 0
expect "server: requests = complete responses" "$(field requests "$s")" "$(field complete "$s")"
accounted=$(( $(field complete "$c") + $(field ok "$c") + $(field unavailable "$c") + $(field clean "$c") ))
expect "server requests = every client's response" "$(field requests "$s")" "$accounted"
expect "health: 503s seen = sent" "$(field unavailable "$c")" "$(field health503 "$s")"
expect "health: 200s seen = sent" "$(field ok "$c")" "$(field health200 "$s")"
[ "$(field unavailable "$c")" -ge 1 ] 2>/dev/null; expect "health: a 503 during the lame duck" "$?" 0
[ "$(field ok "$c")" -ge 1 ] 2>/dev/null; expect "health: 200 before it" "$?" 0
expect "health probe refused once the listener closed" "$(field refused= "$c" || true)$(sed -n 's/.*health:.* refused=\([0-9]*\).*/\1/p' "$c")" 1
expect "health: probes lost" "$(sed -n 's/.*health:.* lost=\([0-9]*\).*/\1/p' "$c")" 0
expect "streams opened" "$(field opened "$c")" 4
expect "streams ended with their closing event (client)" "$(field clean "$c")" 4
expect "streams cut (client)" "$(field cut "$c")" 0
expect "streams closed cleanly (server)" "$(field streams_clean "$s")" 4
expect "streams cut (server)" "$(field streams_cut "$s")" 0
expect "connections closed idle in the drain" "$(field closed_idle "$s")" 0
expect "connections closed with unread bytes" "$(field closed_unread "$s")" 0
phases=$(sed -n 's/^\[ *[-+0-9.]* s\] \([a-z]*\).*/\1/p' "$s" | tr '\n' ' ')
expect "phases in order" "$phases" "lame refusing draining done "
expect_grep "manager: clean" "done      (in flight 0); clean" "$tmp/server.err"
finish
