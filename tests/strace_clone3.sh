#!/bin/sh
# SPDX-License-Identifier: MIT
# Run a test program with its WHEN-th clone3 (default: the first thread it
# creates) failing with EAGAIN. Exits 77 (ctest SKIP) if strace or ptrace
# is missing. Usage: strace_clone3.sh PROGRAM [WHEN]
set -u
prog=$1
when=${2:-1}
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
exec strace -f -o /dev/null -e inject=clone3:error=EAGAIN:when="$when" "$prog"
