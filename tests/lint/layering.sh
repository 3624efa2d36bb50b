#!/bin/sh
# SPDX-License-Identifier: MIT
# The layering of SPEC.md: src/core knows nothing of processes or signal
# handling; each layer includes only the public headers, src/internal.h and
# its own directory (never a private header of another layer); adapters,
# tools and examples use only the public headers.
set -eu
cd "$1"
bad=0
fail() { echo "layering: $*" >&2; bad=1; }

for layer in core sync os app; do
    [ -d "src/$layer" ] || continue
    for f in src/$layer/*.c src/$layer/*.h; do
        [ -e "$f" ] || continue
        grep -n '#include "' "$f" | while IFS= read -r line; do
            inc=$(printf '%s\n' "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
            case "$inc" in
            internal.h) ;;
            */*|..*) echo "layering: $f includes \"$inc\" (another layer)" >&2
                     echo x ;;
            *) [ -e "src/$layer/$inc" ] ||
                   { echo "layering: $f includes \"$inc\", not in src/$layer" >&2
                     echo x; } ;;
            esac
        done | grep -q x && bad=1
    done
done

# The core: no processes, no signal handling.
code_only() { grep -vE '^[^:]+:[0-9]+: *(\*|/\*|//)'; }
if grep -nE '\b(posix_spawn|fork|vfork|execv|waitpid|waitid|kill|tgkill|sigaction|signalfd|pidfd_open|pidfd_send_signal)\b *\(' \
        src/core/*.c src/core/*.h | code_only | grep .; then
    fail "src/core uses process or signal-handling calls"
fi
if grep -nE '#include <(spawn\.h|sys/wait\.h|sys/signalfd\.h)>' src/core/*.c src/core/*.h; then
    fail "src/core includes process or signalfd headers"
fi
# _GNU_SOURCE only in src/os (and tests).
if grep -lE '#define _GNU_SOURCE' src/core/* src/sync/* src/app/* 2>/dev/null; then
    fail "_GNU_SOURCE outside src/os"
fi
# Users of the library: public headers only.
for d in tools examples adapters; do
    [ -d "$d" ] || continue
    if grep -rnE '#include "(\.\./)*(src/)?(internal\.h|[a-z]+_int\.h)"|#include "(\.\./)+src/' "$d"; then
        fail "$d reaches into the library's private headers"
    fi
done
# The library never calls pthread_cancel (RELIABILITY #5).
if grep -rn 'pthread_cancel *(' src; then
    fail "src calls pthread_cancel"
fi
[ "$bad" = 0 ] && echo "layering: ok"
exit "$bad"
