#!/bin/bash
# SPDX-License-Identifier: MIT
# The whole tree goes: the process group, a setsid'd grandchild, a double
# fork, a background job. Zero survivors once ctxrun has returned (timeout
# leaves the escapees: shown, not asserted). --foreground signals the
# command alone, as timeout(1) --foreground.
. "$(dirname "$0")/lib.sh"

tree="setsid sleep $TOK & (sleep $TOK &); sleep $TOK & exec sleep $TOK"
all_four() {
    [ "$(survivors "$TOK")" -ge 4 ]
}

# At the time limit.
"$CTXRUN" 30 sh -c "$tree" &
pid=$!
wait_for all_four
expect_eq "4 processes in the tree" "$(survivors "$TOK")" 4
kill -TERM "$pid"
wait "$pid"
expect_eq "SIGTERM to ctxrun: 143" "$?" 143
expect_eq "no survivor after a signal" "$(survivors "$TOK")" 0

run "$CTXRUN" -v 1 sh -c "$tree"
expect_eq "timed out: 124" "$RC" 124
expect_eq "no survivor after the time limit" "$(survivors "$TOK")" 0

# Escapees that ignore TERM: they get the KILL of -k, and ctxrun returns
# only once they are gone.
stubborn="setsid sh -c \"trap '' TERM; exec sleep $TOK\" & exec sleep $TOK"
run "$CTXRUN" -k 0.5 1 sh -c "$stubborn"
expect_eq "escapee ignoring TERM: the command died of TERM: 124" "$RC" 124
expect_range "returned after the KILL (ms)" "$MS" 1500 15000
expect_eq "no survivor: the escapee got KILL" "$(survivors "$TOK")" 0

# In group mode too.
run "$CTXRUN" --group --timeout 1 -- "$tree" "$tree"
expect_eq "group timed out: 124" "$RC" 124
expect_eq "no survivor of the group" "$(survivors "$TOK")" 0

# A nested ctxrun in a new session is still part of the tree.
run "$CTXRUN" 1 setsid -w "$CTXRUN" 100 sh -c "$tree"
expect_eq "nested in a new session: 124" "$RC" 124
expect_eq "no survivor of the nested tree" "$(survivors "$TOK")" 0

# --foreground, as timeout(1) --foreground: the command stays in the
# caller's process group, and only it is signalled: its background job
# is left running.
fg="echo \$(ps -o pgid= -p \$\$) >$TMP/pgid; sleep $TOK & exec sleep $TOK"
ours=$(ps -o pgid= -p $$ | tr -d ' ')
run "$CTXRUN" --foreground 0.5 sh -c "$fg"
expect_eq "--foreground: timed out" "$RC" 124
expect_eq "--foreground: the command ran in our process group" \
    "$(tr -d ' ' <"$TMP/pgid")" "$ours"
expect_eq "--foreground: its background job is left" "$(survivors "$TOK")" 1
for p in $(pids_of "$TOK"); do kill -KILL "$p"; done
same "--foreground: timed out" 124 --foreground 0.5 sh -c "$fg"
for p in $(pids_of "$TOK"); do kill -KILL "$p"; done
run "$CTXRUN" 0.5 sh -c "$fg"
if [ "$(tr -d ' ' <"$TMP/pgid")" != "$ours" ]; then
    ok "without it: a process group of its own"
else
    fail "without it: the command ran in our process group"
fi
expect_eq "without it: nothing is left" "$(survivors "$TOK")" 0

# timeout(1) for comparison: the setsid'd one escapes it.
if command -v timeout >/dev/null; then
    run timeout 1 sh -c "$tree"
    expect_eq "timeout: 124 too" "$RC" 124
    echo "info: timeout(1) left $(survivors "$TOK") of the 4"
fi
finish
