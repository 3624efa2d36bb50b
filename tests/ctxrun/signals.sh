#!/bin/bash
# SPDX-License-Identifier: MIT
# INT, TERM, HUP and QUIT sent to ctxrun reach the command's tree, and
# escalate to KILL when they are ignored; exit statuses as timeout(1).
. "$(dirname "$0")/lib.sh"

started() {
    tok_running || grep -qs ready "$TMP/rec"
}

# bg TOOL ARGS...: start in the background, wait until `sleep $TOK` or
# the recorder runs; PID is the tool's.
bg() {
    "$@" 2>"$TMP/err" &
    PID=$!
    wait_for started
}

# signal_to SIG TOOL ARGS...: RC of TOOL after SIG was sent to it.
signal_to() {
    local sig=$1
    shift
    bg "$@"
    kill -"$sig" "$PID"
    wait "$PID"
    RC=$?
}

for s in INT TERM HUP QUIT; do
    n=$(kill -l "$s")
    for tool in "$CTXRUN" timeout; do
        signal_to "$s" "$tool" 30 sleep "$TOK"
        expect_eq "$(basename "$tool"): SIG$s forwarded, 128+$n" "$RC" $((128 + n))
        [ "$tool" = "$CTXRUN" ] &&
            expect_eq "ctxrun: no survivor after SIG$s" "$(survivors "$TOK")" 0
        cleanup_tok=$(pids_of "$TOK")
        [ -n "$cleanup_tok" ] && kill -KILL $cleanup_tok
    done
done

# The command handles INT and exits 7: ctxrun's status is 7, as
# timeout's. Its `&` job ignores INT (sh starts background jobs so):
# ctxrun's escalation (-k) ends it; timeout(1) leaves it behind.
handler="trap 'exit 7' INT; sleep $TOK & wait"
signal_to INT "$CTXRUN" -k 0.3 30 sh -c "$handler"
expect_eq "ctxrun: the command's handler decides: 7" "$RC" 7
expect_eq "ctxrun: its INT-ignoring background job is gone too" \
    "$(survivors "$TOK")" 0
signal_to INT timeout -k 0.3 30 sh -c "$handler"
expect_eq "timeout: the command's handler decides: 7" "$RC" 7
echo "info: timeout(1) left $(survivors "$TOK") process(es) of the tree"
for p in $(pids_of "$TOK"); do kill -KILL "$p"; done

# Ignored: escalation to KILL after -k, 137 as timeout(1).
ignorer="trap '' INT; exec sleep $TOK"
signal_to INT "$CTXRUN" -k 0.3 30 sh -c "$ignorer"
expect_eq "ctxrun: INT ignored, KILL after -k: 137" "$RC" 137
signal_to INT timeout -k 0.3 30 sh -c "$ignorer"
expect_eq "timeout: INT ignored, KILL after -k: 137" "$RC" 137
for p in $(pids_of "$TOK"); do kill -KILL "$p"; done

# Without -k, a received signal still escalates: KILL after 5 s (timeout
# would wait for the command forever).
t0=$(now_ms)
signal_to INT "$CTXRUN" -v 30 sh -c "$ignorer"
ms=$(($(now_ms) - t0))
expect_eq "ctxrun: INT ignored, no -k: KILL anyway, 137" "$RC" 137
expect_range "after the 5 s grace (ms)" "$ms" 5000 20000
expect_eq "-v: INT then KILL" \
    "$(sed -n 's/.*sending \(SIG[A-Z]*\).*/\1/p' "$TMP/err" | tr '\n' ' ')" \
    "SIGINT SIGKILL "
expect_eq "no survivor" "$(survivors "$TOK")" 0

# Signals that come while escalating are passed on too, in order.
bg "$CTXRUN" -k 1 30 "$SIGREC" "$TMP/rec"
kill -INT "$PID"
wait_for grep -q SIGINT "$TMP/rec"
kill -HUP "$PID"
wait_for grep -q SIGHUP "$TMP/rec"
wait "$PID"
expect_eq "later signals forwarded, KILL at the end: 137" "$?" 137
expect_eq "the command got INT, then HUP" \
    "$(sed -n 's/^\(SIG[A-Z]*\).*/\1/p' "$TMP/rec" | tr '\n' ' ')" \
    "SIGINT SIGHUP "
finish
