# SPDX-License-Identifier: MIT
# Helpers of the ctxrun scenarios, sourced by each one:
#   bash tests/ctxrun/SCENARIO.sh path/to/ctxrun [path/to/sigrec]
# Each check prints "ok" or "FAIL" with what it saw; `finish` exits 1 if
# any failed. Times are asserted with asymmetric bounds: tight where
# something must not have happened yet, generous where it must happen (a
# loaded 2-core machine delays a wake-up by tens of milliseconds).
set -u

CTXRUN=$1
SIGREC=${2:-}
TMP=$(mktemp -d)
FAILS=0
CHECKS=0
# A token unique to this run: every long-lived process a scenario starts
# is a `sleep $TOK` (10^4..10^5 seconds), so survivors can be counted.
TOK="$((($$ % 90000) + 10000)).$(od -An -N3 -tu4 /dev/urandom | tr -d ' ')"

# The processes still alive (not zombies) that are `sleep $1` (not a
# `sh -c '... sleep $1'`, not a `ctxrun 5 sleep $1`).
pids_of() {
    local f d state
    for f in $(grep -l -a -z -x -F -e "$1" /proc/[0-9]*/cmdline 2>/dev/null); do
        d=${f%/cmdline}
        [ "$(tr '\0' ' ' 2>/dev/null <"$f")" = "sleep $1 " ] || continue
        state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' 2>/dev/null \
            <"$d/status") || continue
        [ -n "$state" ] && [ "$state" != Z ] && echo "${d#/proc/}"
    done
}

survivors() {
    pids_of "$1" | wc -l
}

# Whether a `sleep $TOK` runs (for wait_for).
tok_running() {
    [ -n "$(pids_of "$TOK")" ]
}

cleanup() {
    for p in $(pids_of "$TOK"); do
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

ok() {
    CHECKS=$((CHECKS + 1))
    echo "ok - $1"
}

fail() {
    CHECKS=$((CHECKS + 1))
    FAILS=$((FAILS + 1))
    echo "FAIL - $1"
}

expect_eq() { # DESC GOT WANT
    if [ "$2" = "$3" ]; then ok "$1 ($2)"; else fail "$1: got '$2', want '$3'"; fi
}

expect_range() { # DESC GOT LO HI (integers)
    if [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then
        ok "$1 ($2 in [$3, $4])"
    else
        fail "$1: $2 not in [$3, $4]"
    fi
}

expect_file() { # DESC FILE: the file exists
    if [ -e "$2" ]; then ok "$1"; else fail "$1: $2 missing"; fi
}

expect_no_file() { # DESC FILE
    if [ -e "$2" ]; then fail "$1: $2 exists"; else ok "$1"; fi
}

# run CMD...: RC and MS (elapsed milliseconds); stderr in $TMP/err.
run() {
    local t0
    t0=$(now_ms)
    "$@" 2>"$TMP/err"
    RC=$?
    MS=$(($(now_ms) - t0))
}

# same DESC WANT ARGS...: `ctxrun ARGS` and `timeout ARGS` both exit WANT.
same() {
    local desc=$1 want=$2
    shift 2
    run "$CTXRUN" "$@"
    expect_eq "ctxrun: $desc" "$RC" "$want"
    if command -v timeout >/dev/null; then
        run timeout "$@"
        expect_eq "timeout: $desc" "$RC" "$want"
    fi
}

# wait_for CMD...: poll until CMD succeeds (up to 10 s); 1 if it never did.
wait_for() {
    local i=0
    until "$@"; do
        i=$((i + 1))
        [ "$i" -ge 1000 ] && return 1
        sleep 0.01
    done
}

finish() {
    echo "$CHECKS checks, $FAILS failed"
    [ "$FAILS" = 0 ]
}
