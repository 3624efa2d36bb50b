# SPDX-License-Identifier: MIT
# Shared by the httpd tests: the demo's helpers, and checks that count.
. "$(dirname "$0")/../../examples/httpd/serve.sh"
fails=0
passed=0
# expect WHAT GOT WANT
expect() {
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
        echo "ok   $1 = $2"
    else
        echo "FAIL $1: got '$2', want '$3'"
        fails=$((fails + 1))
    fi
}
# expect_grep WHAT PATTERN FILE
expect_grep() {
    if grep -q -- "$2" "$3"; then
        passed=$((passed + 1))
        echo "ok   $1"
    else
        echo "FAIL $1: no '$2' in $(basename "$3")"
        fails=$((fails + 1))
    fi
}
finish() {
    if [ "$fails" -ne 0 ]; then
        echo "--- server stdout"; cat "$tmp/server.out"
        echo "--- server stderr"; cat "$tmp/server.err"
        [ -f "$tmp/clients.out" ] && { echo "--- clients"; cat "$tmp/clients.out"; }
    fi
    echo "$passed passed, $fails failed"
    [ "$fails" -eq 0 ]
}
