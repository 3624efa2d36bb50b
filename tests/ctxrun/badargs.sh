#!/bin/bash
# SPDX-License-Identifier: MIT
# Bad input: exit 125, one line on stderr that names the bad argument,
# nothing started. Where timeout(1) takes the same arguments, it says 125
# as well.
. "$(dirname "$0")/lib.sh"

# bad NAME-IN-MESSAGE ARGS...: ctxrun ARGS touch $TMP/started
bad() {
    local name=$1
    shift
    bare "$name" "$@" touch "$TMP/started"
}

# bare NAME-IN-MESSAGE ARGS...: ctxrun ARGS (the command, if any, in it)
bare() {
    local name=$1
    shift
    rm -f "$TMP/started"
    run "$CTXRUN" "$@"
    expect_eq "[$*]: 125" "$RC" 125
    expect_eq "[$*]: one line" "$(wc -l <"$TMP/err")" 1
    expect_eq "[$*]: it names '$name'" "$(grep -c -F -- "$name" "$TMP/err")" 1
    expect_no_file "[$*]: nothing started" "$TMP/started"
}

# As timeout(1) has them: the same status from both.
both() {
    local name=$1
    shift
    bad "$name" "$@"
    if command -v timeout >/dev/null; then
        run timeout "$@" touch "$TMP/started"
        expect_eq "timeout [$*]: 125 too" "$RC" 125
        expect_no_file "timeout [$*]: nothing started" "$TMP/started"
    fi
}

both 5x 5x
both 1ms-ish 1ms-ish
both '' ''
both -1 -1
both FOO -s FOO 5
both SIGFOO -s SIGFOO 5
both 65 -s 65 5
both 2x -k 2x 5
bare 'missing command' 5
bare 'missing command' --timeout 5 --
bare 'missing command'
bare 'missing command' -v
bad -1s --timeout -1s --
bad 5q --timeout 5q --
bad 2q --kill-after 2q 5
bad --nope --nope 5
bad --help=3 --help=3 5
bad -x -x 5
bad -x -vx 5
bare "'--timeout' needs an argument" --timeout
bare "'-s' needs an argument" -s
bad TERM,2x,KILL --term-seq TERM,2x,KILL 5
bad NOPE --term-seq TERM,1s,NOPE 5
bad 'TERM,1s' --term-seq TERM,1s 5
bad 'TERM,,KILL' --term-seq TERM,,KILL 5
bad "--term-seq 'TERM'" --term-seq TERM -s INT 5
bad -1 --group -j -1 --
bad 'two' --group -j two --
bad later --group --halt later --
bad '--jobs needs --group' -j 2 5
bad '--halt needs --group' --halt soon 5
bare 'missing command lines' --group --
finish
