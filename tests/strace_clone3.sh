#!/bin/sh
# SPDX-License-Identifier: MIT
# Run a test program once per WHEN, its clone3 failing with EAGAIN as
# strace's `when=` says (K: the K-th call only; K+: the K-th and every one
# after). Every run must exit 0 within 60 s. Exits 77 (ctest SKIP) if
# strace or ptrace is missing.
# Usage: strace_clone3.sh PROGRAM WHEN...
set -u
prog=$1
shift
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
for when in "$@"; do
    out=$(timeout 60 strace -f -o /dev/null \
        -e inject=clone3:error=EAGAIN:when="$when" "$prog" 2>&1)
    rc=$?
    echo "when=$when: exit $rc: $out"
    [ "$rc" -eq 0 ] || status=1
done
exit $status
