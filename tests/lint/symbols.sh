#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared library exports exactly the functions the public headers
# declare with CTX_API, and imports no pthread_cancel. An adapter's library
# is checked against its own headers.
#   symbols.sh SOURCE_DIR path/to/libctx.so [HEADER_DIR]
set -eu
src=$1
lib=$2
headers=${3:-$src/include/ctx}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -h 'CTX_API' "$headers"/*.h | grep -v '#define' |
    sed -n 's/.*[ *]\(ctx_[a-z0-9_]*\) *(.*/\1/p' | sort -u >"$tmp/declared"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}' |
    grep -v '^_' | sort -u >"$tmp/exported"

status=0
if ! cmp -s "$tmp/declared" "$tmp/exported"; then
    echo "symbols: exported (>) and declared (<) differ:" >&2
    diff "$tmp/declared" "$tmp/exported" >&2 || true
    status=1
fi
if nm -D --undefined-only "$lib" | grep -q 'pthread_cancel'; then
    echo "symbols: libctx imports pthread_cancel" >&2
    status=1
fi
[ "$status" = 0 ] && echo "symbols: $(wc -l <"$tmp/exported") exported, all declared"
exit "$status"
