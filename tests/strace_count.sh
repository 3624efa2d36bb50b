#!/bin/sh
# SPDX-License-Identifier: MIT
# A ctx_read (or ctx_write) that finds its descriptor ready costs one
# system call (issue 5): count them with strace -c over N operations of
# each kind, on a pipe and a socket, with and without a deadline; allow
# a fixed start-up cost (the loader, libc, the timer thread), nothing
# per operation.   strace_count.sh path/to/read_ready
set -u
prog=$1
n=5000
startup=200
command -v strace >/dev/null 2>&1 || { echo "no strace: skipped"; exit 77; }
strace -f -o /dev/null true 2>/dev/null || { echo "no ptrace: skipped"; exit 77; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail=0
for fd in pipe socket; do
    for c in background deadline; do
        strace -f -c -o "$out" "$prog" $fd $c $n >/dev/null || fail=1
        total=$(awk '$NF == "total" { print ($4 ~ /^[0-9]+$/) ? $4 : $3 }' "$out")
        echo "$fd, $c: $total system calls for $n writes + $n reads"
        sed -n '3,8p' "$out"
        if [ -z "$total" ] || [ "$total" -gt $((2 * n + startup)) ]; then
            echo "  more than one system call per operation"
            fail=1
        fi
    done
done
exit "$fail"
