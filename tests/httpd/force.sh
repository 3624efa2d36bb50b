#!/bin/sh
# SPDX-License-Identifier: MIT
# A handler that ignores cancellation (/stuck): the drain budget passes,
# the force phase shuts the sockets down, the handler still runs, and the
# process exits with the manager's status (3) after naming it.
#   force.sh BIN_DIR
set -u
BIN=$1
. "$(dirname "$0")/common.sh"

start_server --stuck --lame-duck-ms 0 --drain-ms 300 --force-ms 300
"$BIN/httpload" --port "$port" --hold /stuck --term "$server" \
    --term-after-ms 300 --duration-ms 20000 >"$tmp/clients.out" 2>&1
status=0
wait "$server" || status=$?
server=""
e=$tmp/server.err

expect "server exit status" "$status" 3
expect_grep "drain budget passed" "drain budget of 300 ms passed with 1 in flight" "$e"
expect_grep "force phase" "forcing   (in flight 1)" "$e"
expect_grep "force action ran" 'force action "shut down sockets" ran' "$e"
expect_grep "straggler counted" "did not stop: 1 work item(s) in flight" "$e"
expect_grep "stuck task named by the dump" "task conn 1: GET /stuck" "$e"
expect_grep "exit announced" "exiting with status 3" "$e"
expect "the held request got no response" "$(field lost "$tmp/clients.out")" 1
finish
