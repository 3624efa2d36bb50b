#!/bin/sh
# SPDX-License-Identifier: MIT
# The OS layer's system calls failing in the kernel (strace -e inject):
# each case makes the first such call fail with the given error; the
# operation must report an error (no crash, no hang), leave nothing
# behind, and work the next time.
#   strace_os.sh path/to/os_fault
set -u
prog=$1
command -v strace >/dev/null 2>&1 || { echo "no strace: skipped"; exit 77; }
strace -f -o /dev/null true 2>/dev/null || { echo "no ptrace: skipped"; exit 77; }

fail=0
check() { # mode syscall error
    out=$(timeout 60 strace -f -o /dev/null -e trace="$2" \
        -e inject="$2":error="$3":when=1 "$prog" "$1" 2>&1)
    rc=$?
    echo "$1, $2 fails with $3: $out (exit $rc)"
    [ "$rc" = 0 ] || fail=1
}
check spawn pipe2 EMFILE
check spawn clone3 EAGAIN
check spawn pidfd_open EMFILE
check wait eventfd2 EMFILE
check wait eventfd2 ENOMEM
check isolate memfd_create ENOMEM
check isolate socketpair EMFILE
check isolate clone EAGAIN
check signal clone3 EAGAIN
exit "$fail"
