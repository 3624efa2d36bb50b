#!/bin/bash
# SPDX-License-Identifier: MIT
# `cmake --install` (what `make install` runs) puts ctxrun in bin/ and its
# man page in share/man/man1/; the installed program runs on its own.
#   install.sh CTXRUN SIGREC SOURCE_DIR BUILD_DIR
. "$(dirname "$0")/lib.sh"
build=$4

cmake --install "$build" --prefix "$TMP/prefix" >/dev/null
expect_eq "cmake --install: exit 0" "$?" 0
expect_file "bin/ctxrun installed" "$TMP/prefix/bin/ctxrun"
expect_file "share/man/man1/ctxrun.1 installed" \
    "$TMP/prefix/share/man/man1/ctxrun.1"
expect_eq "the installed man page is the source's" \
    "$(cmp -s "$3/tools/ctxrun/ctxrun.1" "$TMP/prefix/share/man/man1/ctxrun.1"; echo $?)" 0
out=$(env -i PATH=/usr/bin:/bin "$TMP/prefix/bin/ctxrun" 5 sh -c 'exit 3')
expect_eq "the installed ctxrun runs a command" "$?" 3
if readelf -d "$TMP/prefix/bin/ctxrun" 2>/dev/null | grep -q 'libctx\.so'; then
    fail "the installed ctxrun needs libctx.so"
else
    ok "the installed ctxrun does not need libctx.so"
fi
if command -v man >/dev/null; then
    MANPATH=$TMP/prefix/share/man man -w ctxrun >"$TMP/where" 2>/dev/null
    expect_eq "man finds it in the prefix" "$(cat "$TMP/where")" \
        "$TMP/prefix/share/man/man1/ctxrun.1"
fi
finish
