#!/bin/sh
# SPDX-License-Identifier: MIT
# Run t_pool_clone3 with its K-th clone3 failing with EAGAIN, once (when=K)
# and from then on (when=K+), for K = FIRST..FIRST+7: every run must exit
# 0 within 60 s. Exits 77 (ctest SKIP) if strace or ptrace is missing.
# Usage: strace_pool_clone3.sh PROGRAM [FIRST]
set -u
prog=$1
first=${2:-1}
if ! command -v strace >/dev/null 2>&1; then
    echo "SKIP: strace is not installed (scripts/setup.sh installs it)"
    exit 77
fi
if ! strace -f -o /dev/null true >/dev/null 2>&1; then
    echo "SKIP: strace cannot trace here (ptrace not permitted)"
    exit 77
fi
# LeakSanitizer cannot run under ptrace; the program checks its own leaks.
ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
export ASAN_OPTIONS
status=0
k=$first
while [ "$k" -lt $((first + 8)) ]; do
    for when in "$k" "$k+"; do
        out=$(timeout 60 strace -f -o /dev/null \
            -e inject=clone3:error=EAGAIN:when="$when" "$prog" 2>&1)
        rc=$?
        echo "when=$when: exit $rc: $out"
        if [ "$rc" -ne 0 ]; then
            status=1
        fi
    done
    k=$((k + 1))
done
exit $status
