#!/bin/bash
# SPDX-License-Identifier: MIT
# A grandchild that keeps stdout open (a pipe to the caller) does not
# hang the caller: ctxrun kills it with the tree. With timeout(1) the
# reader waits for the grandchild (shown with a 3 s one).
. "$(dirname "$0")/lib.sh"

holder="setsid sleep $TOK & exec sleep $TOK"
t0=$(now_ms)
"$CTXRUN" 0.3 sh -c "$holder" | cat >/dev/null
rc=${PIPESTATUS[0]}
ms=$(($(now_ms) - t0))
expect_eq "timed out: 124" "$rc" 124
expect_range "the pipe closed with the time limit (ms)" "$ms" 300 15000
expect_eq "no survivor holds the pipe" "$(survivors "$TOK")" 0

# The same when the command ignores TERM and needs -k.
t0=$(now_ms)
"$CTXRUN" -k 0.2 0.3 sh -c "trap '' TERM; $holder" | cat >/dev/null
rc=${PIPESTATUS[0]}
ms=$(($(now_ms) - t0))
expect_eq "with -k: 137" "$rc" 137
expect_range "with -k, the pipe closed at the KILL (ms)" "$ms" 500 15000

# What the tree wrote before it was ended arrives whole.
"$CTXRUN" 60 sh -c "echo first; setsid sh -c 'echo second; touch $TMP/m; exec sleep $TOK' & exec sleep $TOK" >"$TMP/out" &
pid=$!
wait_for test -e "$TMP/m"
kill -TERM "$pid"
wait "$pid"
expect_eq "ended by TERM: 143" "$?" 143
expect_eq "output of the tree arrives" "$(sort "$TMP/out" | tr '\n' ' ')" \
    "first second "
expect_eq "no survivor" "$(survivors "$TOK")" 0

if command -v timeout >/dev/null; then
    t0=$(now_ms)
    timeout 0.3 sh -c "setsid sleep 3 & exec sleep $TOK" | cat >/dev/null
    rc=${PIPESTATUS[0]}
    ms=$(($(now_ms) - t0))
    expect_eq "timeout: 124 too" "$rc" 124
    expect_range "timeout: the reader waited for the grandchild (ms)" "$ms" 2500 20000
fi
finish
