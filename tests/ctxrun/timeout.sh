#!/bin/bash
# SPDX-License-Identifier: MIT
# The time limit: 124 when it runs out, --preserve-status, -s, and the
# same exit statuses as timeout(1) in each case.
. "$(dirname "$0")/lib.sh"

same "timed out" 124 0.3 sleep "$TOK"
run "$CTXRUN" 0.3 sleep "$TOK"
expect_range "ended at the time limit, not before (ms)" "$MS" 300 10000
expect_eq "no survivor" "$(survivors "$TOK")" 0

run "$CTXRUN" --timeout 300ms -- sleep "$TOK"
expect_eq "--timeout 300ms: timed out" "$RC" 124

# The command catches TERM and exits 0: still 124, as timeout(1).
same "timed out, command exits 0 on TERM" 124 \
    0.3 sh -c 'trap "exit 0" TERM; sleep 30 & wait'
same "--preserve-status: the command's 0" 0 \
    --preserve-status 0.3 sh -c 'trap "exit 0" TERM; sleep 30 & wait'
same "--preserve-status: the command's 3" 3 \
    --preserve-status 0.3 sh -c 'trap "exit 3" TERM; sleep 30 & wait'
same "--preserve-status: killed by TERM: 128+15" 143 \
    --preserve-status 0.3 sleep "$TOK"

# -s: the signal sent at the time limit, as timeout(1) reads it.
for s in INT int SIGINT 2 130; do
    same "-s $s: timed out" 124 -s "$s" 0.3 sleep "$TOK"
    same "-s $s --preserve-status: killed by INT" 130 \
        --preserve-status -s "$s" 0.3 sleep "$TOK"
done
same "-s HUP --preserve-status" 129 --preserve-status -s HUP 0.3 sleep "$TOK"
# KILL: timeout(1) kills its own process group, itself included: 137,
# with or without --preserve-status.
same "-s KILL" 137 -s KILL 0.3 sleep "$TOK"
same "-s KILL --preserve-status" 137 --preserve-status -s KILL 0.3 sleep "$TOK"

# The signal is what the -v line says, and reaches the command.
"$CTXRUN" -v -s USR1 -k 0.2 0.3 "$SIGREC" "$TMP/rec" 2>"$TMP/v"
expect_eq "-s USR1 -k: KILL at the end" "$?" 137
expect_eq "-s USR1 reaches the command" "$(grep -c SIGUSR1 "$TMP/rec")" 1
expect_eq "-v names it" "$(grep -c 'timed out after 300ms: step 1 of 2: sending SIGUSR1' "$TMP/v")" 1
finish
