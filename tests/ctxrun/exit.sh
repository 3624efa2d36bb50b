#!/bin/bash
# SPDX-License-Identifier: MIT
# The command's exit status passes through, in every form of the command
# line; its arguments arrive as given.
. "$(dirname "$0")/lib.sh"

for code in 0 1 3 124 255; do
    same "exit $code" "$code" 5 sh -c "exit $code"
done
same "true" 0 10 true
same "false" 1 10 false

# The forms of the command line.
run "$CTXRUN" --timeout 5 -- sh -c 'exit 7'
expect_eq "--timeout D -- COMMAND" "$RC" 7
run "$CTXRUN" --timeout=250ms -- sh -c 'exit 8'
expect_eq "--timeout=D (Go duration)" "$RC" 8
run "$CTXRUN" -- 5 sh -c 'exit 9'
expect_eq "-- DURATION COMMAND (timeout's form after --)" "$RC" 9
run "$CTXRUN" -- sh -c 'exit 10'
expect_eq "-- COMMAND: no time limit" "$RC" 10
run "$CTXRUN" 0 sh -c 'exit 11'
expect_eq "DURATION 0: no time limit" "$RC" 11
run "$CTXRUN" 1h2m3.5s sh -c 'exit 12'
expect_eq "a Go duration operand" "$RC" 12
run "$CTXRUN" 0.5m sh -c 'exit 13'
expect_eq "a timeout(1) duration with a suffix" "$RC" 13
run "$CTXRUN" -v 5 sh -c 'exit 14'
expect_eq "options before the duration" "$RC" 14

# Arguments verbatim: blanks, an empty one, and ones that look like
# options of ctxrun (they belong to the command).
"$CTXRUN" 5 printf '[%s]' 'a b' '' -k --timeout -- >"$TMP/out"
expect_eq "arguments verbatim" "$(cat "$TMP/out")" "[a b][][-k][--timeout][--]"

# Standard streams are the caller's.
out=$(echo piped | "$CTXRUN" 5 cat)
expect_eq "stdin and stdout pass through" "$out" piped

# Without a timeout nothing is cut short: a 300 ms command finishes.
run "$CTXRUN" 10 sh -c 'sleep 0.3; exit 4'
expect_eq "a command that ends in time" "$RC" 4
expect_range "it ran its course (ms)" "$MS" 300 10000

# The command's signal death is passed on: ctxrun dies of the same signal.
same "killed by SIGUSR1 (not a timeout)" 138 5 sh -c 'kill -USR1 $$'
same "killed by SIGTERM (not a timeout)" 143 5 sh -c 'kill -TERM $$'
finish
