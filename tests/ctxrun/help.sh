#!/bin/bash
# SPDX-License-Identifier: MIT
# --help and the man page list the same options, each of which ctxrun
# accepts; --version; the man page renders without warnings.
#   help.sh CTXRUN SIGREC SOURCE_DIR
. "$(dirname "$0")/lib.sh"
man_page=$3/tools/ctxrun/ctxrun.1

"$CTXRUN" --help >"$TMP/help"
expect_eq "--help: exit 0" "$?" 0
# The options --help defines: the option column of its "  -x, --long"
# lines.
sed -n 's/^ \{2,6\}\(-[a-zA-Z], \)\{0,1\}\(--[a-z-]*\).*/\1 \2/p' "$TMP/help" |
    tr ', ' '\n\n' | grep -- '^-' | sort -u >"$TMP/help.opts"
# The options the man page defines: the line after each .TP under OPTIONS.
sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$man_page" |
    sed -n '/^\.TP/{n;p}' | sed 's/\\f[BIRP]//g; s/\\-/-/g; s/=.*//' |
    tr ', ' '\n\n' | grep -- '^-' | sort -u >"$TMP/man.opts"
expect_eq "--help defines options" "$(wc -l <"$TMP/help.opts")" 16
expect_eq "--help and the man page define the same options" \
    "$(diff "$TMP/help.opts" "$TMP/man.opts" | grep '^[<>]' | tr '\n' ' ')" ""

# Every option either one mentions anywhere is in the other.
words() {
    grep -oE -- '(^|[^-a-zA-Z])--?[a-z][-a-z]*' "$1" | sed 's/^[^-]*//' |
        grep -vE -- '^-(c|w)$' | sort -u
}
words "$TMP/help" >"$TMP/help.words"
sed 's/\\f[BIRP]//g; s/\\-/-/g' "$man_page" >"$TMP/man.txt"
words "$TMP/man.txt" >"$TMP/man.words"
expect_eq "options mentioned in --help are in the man page" \
    "$(comm -23 "$TMP/help.words" "$TMP/man.words" | tr '\n' ' ')" ""
expect_eq "options mentioned in the man page are in --help" \
    "$(comm -13 "$TMP/help.words" "$TMP/man.words" | tr '\n' ' ')" ""

# ctxrun accepts each of them.
while read -r opt; do
    "$CTXRUN" "$opt" >/dev/null 2>"$TMP/err"
    if grep -q "invalid option" "$TMP/err"; then
        fail "ctxrun does not accept $opt: $(cat "$TMP/err")"
    else
        ok "ctxrun accepts $opt"
    fi
done <"$TMP/help.opts"

version=$("$CTXRUN" --version)
expect_eq "--version: exit 0" "$?" 0
case "$version" in
"ctxrun (libctx) "[0-9]*.[0-9]*.[0-9]*) ok "--version: $version" ;;
*) fail "--version: '$version'" ;;
esac

if command -v groff >/dev/null; then
    groff -man -Tutf8 -ww -z "$man_page" 2>"$TMP/groff"
    expect_eq "the man page renders without warnings" \
        "$? $(wc -l <"$TMP/groff")" "0 0"
fi
finish
