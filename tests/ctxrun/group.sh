#!/bin/bash
# SPDX-License-Identifier: MIT
# --group: the first failure cancels the others (with the escalation), its
# status is ctxrun's; --halt soon lets running ones finish; -j limits how
# many run at once; -v says which failed, which were cancelled, which
# never started.
. "$(dirname "$0")/lib.sh"

# First failure cancels the rest: their trees go, and fast.
run "$CTXRUN" --group -v -- "sleep 0.3; exit 3" "sleep $TOK" \
    "setsid sleep $TOK & sleep $TOK"
expect_eq "first failure's status" "$RC" 3
expect_range "the others ended with it (ms)" "$MS" 300 15000
expect_eq "no survivor" "$(survivors "$TOK")" 0
expect_eq "-v: command 1 failed" \
    "$(grep -c 'command 1 failed (exit status 3): sleep 0.3; exit 3' "$TMP/err")" 1
expect_eq "-v: command 2 cancelled" \
    "$(grep -c "command 2 cancelled (killed by SIGTERM): sleep $TOK" "$TMP/err")" 1
expect_eq "-v: command 3 cancelled" "$(grep -c 'command 3 cancelled' "$TMP/err")" 1

# A failure by signal: 128+N. All succeed: 0.
run "$CTXRUN" --group -- "sleep 0.2; kill -USR1 \$\$" "sleep $TOK"
expect_eq "first failure killed by SIGUSR1: 138" "$RC" 138
run "$CTXRUN" --group -- true "sleep 0.1" "exit 0"
expect_eq "all succeed: 0" "$RC" 0
run "$CTXRUN" --group -- "sleep 0.2; exit 4" "exit 5"
expect_eq "the first to fail, not the first listed" "$RC" 5

# The escalation applies: a command ignoring TERM gets KILL.
run "$CTXRUN" --group -v --term-seq TERM,0.3s,KILL -- "sleep 0.2; exit 6" \
    "trap '' TERM; sleep $TOK & wait"
expect_eq "escalation in the group: status 6" "$RC" 6
expect_eq "-v: TERM then KILL" \
    "$(sed -n 's/.*sending \(SIG[A-Z]*\).*/\1/p' "$TMP/err" | tr '\n' ' ')" \
    "SIGTERM SIGKILL "
expect_eq "no survivor after KILL" "$(survivors "$TOK")" 0

# --halt soon: the running one finishes; the waiting one never starts.
run "$CTXRUN" --group -v -j 2 --halt soon -- "sleep 0.2; exit 7" \
    "sleep 1; touch $TMP/soon2" "touch $TMP/soon3"
expect_eq "--halt soon: status 7" "$RC" 7
expect_range "--halt soon waited for the running one (ms)" "$MS" 1000 20000
expect_file "--halt soon: the running one finished" "$TMP/soon2"
expect_no_file "--halt soon: the third never started" "$TMP/soon3"
expect_eq "-v: command 3 not started" \
    "$(grep -c "command 3 not started: touch $TMP/soon3" "$TMP/err")" 1

# --halt now (the default), same commands: the running one is ended.
run "$CTXRUN" --group -j 2 --halt now -- "sleep 0.2; exit 7" \
    "sleep 1; touch $TMP/now2" "touch $TMP/now3"
expect_eq "--halt now: status 7" "$RC" 7
sleep 1.2 # it would have touched the file by now
expect_no_file "--halt now: the running one was ended" "$TMP/now2"
expect_no_file "--halt now: the third never started" "$TMP/now3"

# -j N: never more than N at once (each command logs its start and end;
# appends of one line are atomic), and all of them run.
jobs_max() { # N: run 6 commands under -j N; prints the most at once
    : >"$TMP/log"
    local cmds=()
    for i in 1 2 3 4 5 6; do
        cmds+=("echo + >>$TMP/log; sleep 0.2; echo - >>$TMP/log")
    done
    "$CTXRUN" --group -j "$1" -- "${cmds[@]}" || echo "status $?"
    awk '/\+/{n++; if (n > m) m = n} /-/{n--} END {print m, NR}' "$TMP/log"
}
expect_eq "-j 1: one at a time, all 6 ran" "$(jobs_max 1)" "1 12"
expect_eq "-j 2: two at a time, all 6 ran" "$(jobs_max 2)" "2 12"
expect_eq "-j 0: no limit" "$(jobs_max 0)" "6 12"
run "$CTXRUN" --group -j 1 -- "sleep 0.2" "sleep 0.2" "sleep 0.2"
expect_range "-j 1: one after the other (ms)" "$MS" 600 20000

# The time limit ends the group: 124; the commands get CTX_DEADLINE.
run "$CTXRUN" --group --timeout 0.3 -- "sleep $TOK" "sleep $TOK"
expect_eq "group timed out: 124" "$RC" 124
expect_eq "no survivor" "$(survivors "$TOK")" 0
run "$CTXRUN" --group --timeout 0.3 --preserve-status -- \
    "trap 'exit 9' TERM; sleep $TOK & wait" \
    "trap 'sleep 0.3; exit 8' TERM; sleep $TOK & wait" true
expect_eq "group timed out, --preserve-status: first status after it" \
    "$RC" 9
"$CTXRUN" --group --timeout 10 -- 'echo "$CTX_DEADLINE" >'"$TMP/dl" >/dev/null
expect_eq "commands get CTX_DEADLINE" "$(grep -c '^[0-9][0-9]*$' "$TMP/dl")" 1

# A signal to ctxrun ends the group and ctxrun dies of it.
"$CTXRUN" --group -- "sleep $TOK" "sleep $TOK" &
pid=$!
wait_for tok_running
kill -INT "$pid"
wait "$pid"
expect_eq "SIGINT to the group: 130" "$?" 130
expect_eq "no survivor" "$(survivors "$TOK")" 0
finish
