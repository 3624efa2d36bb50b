# SPDX-License-Identifier: MIT
# Shared by demo.sh and the httpd tests (sourced, with BIN set): a
# scratch directory, the server started on a free loopback port, counts
# read back from the programs' "key=value" lines.
tmp=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# start_server ARGS...: sets $server (pid) and $port; output in
# $tmp/server.out and $tmp/server.err.
start_server() {
    "$BIN/httpd" --port 0 --port-file "$tmp/port" "$@" \
        >"$tmp/server.out" 2>"$tmp/server.err" &
    server=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1))
        if [ "$i" -gt 200 ]; then
            echo "the server did not start" >&2
            cat "$tmp/server.err" >&2
            exit 1
        fi
        sleep 0.05
    done
    port=$(cat "$tmp/port")
}

# field KEY FILE: the value of KEY=value in FILE
field() {
    sed -n "s/.*[ :]$1=\([0-9-]*\).*/\1/p" "$2" | head -n 1
}
