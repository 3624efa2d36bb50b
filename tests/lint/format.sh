#!/bin/sh
# SPDX-License-Identifier: MIT
# Every C source and header must be as clang-format (.clang-format) makes it.
set -eu
cd "$1"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files '*.c' '*.h')
else
    files=$(find include src tests bench examples tools adapters \
                 -name '*.c' -o -name '*.h' 2>/dev/null)
fi
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
echo "format: $(echo "$files" | wc -w) files clean"
