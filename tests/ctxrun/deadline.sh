#!/bin/bash
# SPDX-License-Identifier: MIT
# CTX_DEADLINE: ctxrun exports its deadline (absolute CLOCK_MONOTONIC
# nanoseconds) and honours one it inherits: a nested ctxrun never
# outlives its parent's deadline, even with a longer --timeout.
. "$(dirname "$0")/lib.sh"

mono_ns() { # CLOCK_MONOTONIC now, plus $1 ms
    python3 -c "import time; print(time.monotonic_ns() + $1 * 1000000)"
}

# Exported: about now + the timeout.
before=$(mono_ns 100000)
dl=$("$CTXRUN" 100 sh -c 'echo "$CTX_DEADLINE"')
after=$(mono_ns 100000)
expect_range "CTX_DEADLINE = start + 100 s (ns)" "$dl" "$before" "$after"
expect_eq "no time limit: no CTX_DEADLINE" \
    "$("$CTXRUN" -- sh -c 'echo "${CTX_DEADLINE-unset}"')" unset

# Inherited: the earlier deadline wins, and is passed on unchanged.
parent=$(mono_ns 600)
out=$(CTX_DEADLINE=$parent "$CTXRUN" 100 sh -c 'echo "$CTX_DEADLINE"')
expect_eq "an earlier inherited deadline is passed on" "$out" "$parent"
far=$(mono_ns 1000000)
dl=$(CTX_DEADLINE=$far "$CTXRUN" 1 sh -c 'echo "$CTX_DEADLINE"')
[ "$dl" -lt "$far" ] && ok "a later inherited deadline gives way" ||
    fail "a later inherited deadline gives way: $dl vs $far"

# Honoured: a 100 s ctxrun under a 0.5 s deadline ends at 0.5 s, 124.
parent=$(mono_ns 500)
CTX_DEADLINE=$parent run "$CTXRUN" -v 100 sleep "$TOK"
ended=$(mono_ns 0)
expect_eq "inherited deadline: 124" "$RC" 124
expect_range "ended at the inherited deadline (ms past it)" \
    "$(((ended - parent) / 1000000))" 0 10000
expect_eq "-v says where the deadline came from" \
    "$(grep -c 'timed out (deadline from CTX_DEADLINE)' "$TMP/err")" 1
expect_eq "no survivor" "$(survivors "$TOK")" 0

# Nested: the inner ctxrun with --timeout 100 under an outer 0.5 s.
run "$CTXRUN" 0.5 "$CTXRUN" --timeout 100 -v -- sleep "$TOK"
expect_eq "nested: 124" "$RC" 124
expect_range "nested: ended at the outer deadline (ms)" "$MS" 500 10000
expect_eq "no survivor" "$(survivors "$TOK")" 0
# The outer one sends nothing at its deadline (signal 0): the inner one
# ends its command by itself, by the inherited deadline.
run "$CTXRUN" --term-seq 0,5s,KILL 0.5 "$CTXRUN" --timeout 100 -v -- \
    sleep "$TOK"
expect_eq "nested, outer silent: 124" "$RC" 124
expect_range "nested, outer silent: ended at the deadline (ms)" "$MS" 500 10000
expect_eq "the inner one timed out by the inherited deadline" \
    "$(grep -c 'timed out (deadline from CTX_DEADLINE)' "$TMP/err")" 1
expect_eq "no survivor" "$(survivors "$TOK")" 0
# Three levels, the middle one in group mode.
run "$CTXRUN" 0.5 "$CTXRUN" --group --timeout 50 -- \
    "$CTXRUN 100 sleep $TOK" "sleep $TOK"
expect_eq "three levels: 124" "$RC" 124
expect_range "three levels: ended at the outer deadline (ms)" "$MS" 500 10000
expect_eq "no survivor" "$(survivors "$TOK")" 0

# Already past: nothing starts, 124.
CTX_DEADLINE=1 run "$CTXRUN" 10 touch "$TMP/started"
expect_eq "deadline already past: 124" "$RC" 124
expect_no_file "deadline already past: nothing started" "$TMP/started"

# Malformed: 125, one line naming it, nothing started.
for bad in abc -5 1.5 12x; do
    CTX_DEADLINE=$bad run "$CTXRUN" 10 touch "$TMP/started"
    expect_eq "CTX_DEADLINE='$bad': 125" "$RC" 125
    expect_eq "CTX_DEADLINE='$bad': one line naming it" \
        "$(grep -c "CTX_DEADLINE '$bad'" "$TMP/err") $(wc -l <"$TMP/err")" "1 1"
    expect_no_file "CTX_DEADLINE='$bad': nothing started" "$TMP/started"
done
finish
