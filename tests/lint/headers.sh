#!/bin/sh
# SPDX-License-Identifier: MIT
# Each public header compiles on its own, first in a translation unit, as
# C11 and as C++ (pedantic, warnings as errors). An adapter's headers are
# checked with its directory and its library's flags:
#   headers.sh SOURCE_DIR [HEADER_DIR CFLAGS...]
set -eu
cd "$1"
shift
dir=include/ctx
if [ $# -gt 0 ]; then
    dir=$1
    shift
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for h in "$dir"/*.h; do
    name=$(basename "$h")
    printf '#include <ctx/%s>\nint main(void) { return 0; }\n' "$name" >"$tmp/t.c"
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude -I"$dir/.." "$@" \
        -fsyntax-only "$tmp/t.c"
    if command -v g++ >/dev/null 2>&1; then
        cp "$tmp/t.c" "$tmp/t.cc"
        g++ -std=c++17 -Wall -Wextra -Werror -Iinclude -I"$dir/.." "$@" \
            -fsyntax-only "$tmp/t.cc"
    fi
    n=$((n + 1))
done
echo "headers: $n headers compile alone (C11, C++17)"
