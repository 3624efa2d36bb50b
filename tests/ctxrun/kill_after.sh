#!/bin/bash
# SPDX-License-Identifier: MIT
# A command that ignores TERM: SIGKILL after -k, exit 137 as timeout(1)
# (whose own process group gets the KILL); without -k it is left to run,
# as timeout(1) leaves it.
. "$(dirname "$0")/lib.sh"

# `trap '' TERM` then exec: the ignored disposition survives the exec.
ignorer="trap '' TERM; exec sleep $TOK"

same "TERM ignored, KILL after -k" 137 -k 0.4 0.3 sh -c "$ignorer"
run "$CTXRUN" -v -k 0.4 0.3 sh -c "$ignorer"
expect_eq "ctxrun -k: 137" "$RC" 137
expect_range "KILL not before 0.3 + 0.4 s (ms)" "$MS" 700 10000
expect_eq "no survivor" "$(survivors "$TOK")" 0
expect_eq "-v: TERM then KILL" \
    "$(sed -n 's/.*sending \(SIG[A-Z]*\).*/\1/p' "$TMP/err" | tr '\n' ' ')" \
    "SIGTERM SIGKILL "

same "--preserve-status does not hide the KILL" 137 \
    --preserve-status -k 0.4 0.3 sh -c "$ignorer"
same "--kill-after=D" 137 --kill-after=0.2 0.3 sh -c "$ignorer"
run "$CTXRUN" --kill-after=200ms --timeout=300ms -- sh -c "$ignorer"
expect_eq "Go durations for both" "$RC" 137

# Without -k (or with -k 0) the TERM is all: a command that ignores it
# runs to its end (here 1.2 s) and its status is 124, as timeout(1).
for k in "" "-k 0"; do
    # shellcheck disable=SC2086
    same "TERM ignored, no KILL ($k)" 124 \
        $k 0.3 sh -c "trap '' TERM; sleep 1.2"
    # shellcheck disable=SC2086
    run "$CTXRUN" $k 0.3 sh -c "trap '' TERM; sleep 1.2"
    expect_range "ran to its end ($k) (ms)" "$MS" 1200 6000
done
finish
