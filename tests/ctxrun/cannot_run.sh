#!/bin/bash
# SPDX-License-Identifier: MIT
# 126 for a command that cannot run, 127 for one that is not found, as
# timeout(1); the message names it.
. "$(dirname "$0")/lib.sh"

same "not found" 127 5 "no-such-command-$TOK"
expect_eq "one line naming it" \
    "$(grep -c "no-such-command-$TOK" "$TMP/err")" 1
same "not found (path)" 127 5 "$TMP/missing"
printf 'echo hi\n' >"$TMP/noexec"
chmod 644 "$TMP/noexec"
same "not executable" 126 5 "$TMP/noexec"
mkdir "$TMP/dir"
same "a directory" 126 5 "$TMP/dir"
run "$CTXRUN" 5 "$TMP/noexec"
expect_eq "ctxrun's message names it" \
    "$(grep -c "failed to run command '$TMP/noexec'" "$TMP/err")" 1
# The command's own 126 and 127 pass through unchanged.
same "the command's 127" 127 5 sh -c 'exit 127'
finish
