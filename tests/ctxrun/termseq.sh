#!/bin/bash
# SPDX-License-Identifier: MIT
# --term-seq: the steps go out in order, each at its time (±50 ms), as the
# -v lines and the command's own clock show; after a received signal too.
#
# Timing on a loaded machine: what is measured is ctxrun's timing, not the
# wait for a CPU on a machine shared by many, so ctxrun runs at real-time
# priority when it may (chrt -f 1; its threads then get a CPU at once). A
# step is never early (1 ms) and ctxrun's steps are in order, in every
# run; at most 50 ms late, and the command got each signal before the
# KILL, in at least one of 3 runs. Under sanitizers the tolerance is
# 500 ms.
. "$(dirname "$0")/lib.sh"

tol=50
[ -n "${CTX_TEST_SANITIZER:-}" ] && tol=500
RT=()
if chrt -f 1 true 2>/dev/null; then
    RT=(chrt -f 1)
    echo "info: ctxrun runs at real-time priority (chrt -f 1)"
fi

# steps FILE: "SIGNAL MILLISECONDS" for each -v step line, in order.
steps() {
    sed -n 's/^ctxrun: +\([0-9]*\)\.\([0-9]\{6\}\)s: .*step [0-9]* of [0-9]*: sending \(SIG[A-Z]*\).*/\3 \1\2/p' "$1" |
        awk '{printf "%s %d\n", $1, $2 / 1000}'
}

# received FILE: "SIGNAL MILLISECONDS" from the recorder's log.
received() {
    awk '$1 ~ /^SIG/ {printf "%s %d\n", $1, $2 / 1000000}' "$1"
}

# offsets: the times on stdin after the first, less the first's.
offsets() {
    awk 'NR == 1 {t = $2} NR > 1 {printf "%d ", $2 - t}'
}

# within LO WANT GOT: every offset in [want - LO, want + tol].
within() {
    local lo=$1 want=($2) got=($3) i
    [ "${#want[@]}" = "${#got[@]}" ] || return 1
    for i in "${!want[@]}"; do
        [ "${got[$i]}" -ge $((want[i] - lo)) ] || return 1
        [ "${got[$i]}" -le $((want[i] + tol)) ] || return 1
    done
}

# Never early, whatever the load: steps are timed from the first one, so
# a step sent before its time is a hard failure at once.
not_early() { # DESC WANT GOT
    local want=($2) got=($3) i
    for i in "${!want[@]}"; do
        if [ "${got[$i]:-0}" -lt $((want[i] - 1)) ]; then
            fail "$1: step $((i + 2)) early: at +$3 ms, want +$2"
            return
        fi
    done
}

# The time limit: TERM at 300 ms, INT 400 ms later, KILL 300 ms after.
for attempt in 1 2 3; do
    rm -f "$TMP/rec"
    "${RT[@]}" "$CTXRUN" -v --term-seq TERM,0.4s,INT,300ms,KILL 0.3 \
        "$SIGREC" "$TMP/rec" 2>"$TMP/v"
    rc=$?
    expect_eq "timed out, ended by the KILL step: 137" "$rc" 137
    expect_eq "-v: the steps in order" "$(steps "$TMP/v" | cut -d' ' -f1 | tr '\n' ' ')" \
        "SIGTERM SIGINT SIGKILL "
    got=$(received "$TMP/rec" | cut -d' ' -f1 | tr '\n' ' ')
    first=$(steps "$TMP/v" | head -n 1 | cut -d' ' -f2)
    vgaps=$(steps "$TMP/v" | offsets)
    rgaps=$(received "$TMP/rec" | offsets)
    not_early "-v" "400 700" "$vgaps"
    [ "${first:-0}" -ge 299 ] || fail "TERM before the time limit: $first ms"
    echo "attempt $attempt: first step at $first ms, then -v +$vgaps, received $got+$rgaps"
    if within 1 "400 700" "$vgaps" && within "$tol" "400" "$rgaps" &&
        [ "$first" -le $((300 + tol)) ] && [ "$got" = "SIGTERM SIGINT " ]; then
        ok "steps at 300, +400, +300 ms (±$tol) by -v and by the command"
        ok "the command got TERM, then INT, once each"
        break
    fi
    [ "$attempt" = 3 ] && fail "steps off by more than $tol ms, or lost, in 3 runs"
done

# A received signal takes the first step's place: HUP, then INT 400 ms
# later, then KILL 300 ms after that.
for attempt in 1 2 3; do
    rm -f "$TMP/rec"
    "${RT[@]}" "$CTXRUN" -v --term-seq TERM,0.4s,INT,300ms,KILL 30 \
        "$SIGREC" "$TMP/rec" 2>"$TMP/v" &
    pid=$!
    wait_for grep -qs ready "$TMP/rec"
    kill -HUP "$pid"
    wait "$pid"
    expect_eq "signalled, ended by the KILL step: 137" "$?" 137
    expect_eq "-v: HUP, INT, KILL" "$(steps "$TMP/v" | cut -d' ' -f1 | tr '\n' ' ')" \
        "SIGHUP SIGINT SIGKILL "
    got=$(received "$TMP/rec" | cut -d' ' -f1 | tr '\n' ' ')
    vgaps=$(steps "$TMP/v" | offsets)
    rgaps=$(received "$TMP/rec" | offsets)
    not_early "-v (signal)" "400 700" "$vgaps"
    echo "attempt $attempt: -v +$vgaps, received $got+$rgaps"
    if within 1 "400 700" "$vgaps" && within "$tol" "400" "$rgaps" &&
        [ "$got" = "SIGHUP SIGINT " ]; then
        ok "steps at +400, +300 ms (±$tol) after the signal"
        ok "the command got HUP, then INT"
        break
    fi
    [ "$attempt" = 3 ] && fail "steps off by more than $tol ms, or lost, in 3 runs"
done

# A sequence without KILL stops at its last signal: the command decides.
run "$CTXRUN" --term-seq INT,0.2s,TERM 0.3 sh -c "trap '' INT; sleep 0.8"
expect_eq "INT ignored, TERM kills it: 124" "$RC" 124
expect_range "ended at the TERM step (ms)" "$MS" 500 15000
# -s and -k are the sequence SIG,K,KILL.
run "$CTXRUN" -v -s INT -k 0.2 0.3 sh -c "trap '' INT; exec sleep $TOK"
expect_eq "-s INT -k 0.2 = INT,0.2,KILL: 137" "$RC" 137
expect_eq "-v: INT then KILL" \
    "$(steps "$TMP/err" | cut -d' ' -f1 | tr '\n' ' ')" "SIGINT SIGKILL "
finish
