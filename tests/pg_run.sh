#!/bin/sh
# SPDX-License-Identifier: MIT
# Run a test program against a PostgreSQL server of its own: initdb into a
# temporary directory, the server listening on a unix socket in it only
# (no TCP), run as an unprivileged user when we are root (the server
# refuses root), stopped and removed at the end, even when the program
# fails or this script is killed (a watchdog stops it when we are gone).
# The program finds it through PGHOST, PGPORT, PGUSER and PGDATABASE.
#   pg_run.sh PROGRAM [ARG...]
# Exit: the program's status; 77 (skip) when no PostgreSQL server is
# installed (scripts/setup.sh installs it on Debian).
set -eu

bindir=""
if command -v pg_config >/dev/null 2>&1; then
    bindir=$(pg_config --bindir 2>/dev/null || true)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ]; then
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/postgres" ] && bindir=$d
    done
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/postgres" ]; then
    echo "pg_run: SKIP: no PostgreSQL server installed (initdb, postgres); " \
        "scripts/setup.sh installs the Debian package 'postgresql'" >&2
    exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ctxpg.XXXXXX")
as=""
if [ "$(id -u)" = 0 ]; then
    # The server will not run as root: nobody, which every system has.
    chown 65534:65534 "$dir"
    as="setpriv --reuid=65534 --regid=65534 --clear-groups --"
fi
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -INT "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# shellcheck disable=SC2086
if ! $as "$bindir/initdb" -D "$dir/data" -U ctxtest --auth=trust --no-sync \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    echo "pg_run: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    exit 1
fi
# shellcheck disable=SC2086
$as "$bindir/postgres" -D "$dir/data" -k "$dir" -p 5432 \
    -c listen_addresses= -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=60 \
    -c shared_buffers=16MB >"$dir/server.log" 2>&1 &
pid=$!
# If this script is killed (a test runner's timeout), the server goes too.
me=$$
(
    trap '' INT TERM HUP
    while kill -0 "$me" 2>/dev/null; do sleep 1; done
    # Gone without its cleanup (the directory is still there): stop the
    # server, remove its files.
    if [ -d "$dir" ]; then
        kill -QUIT "$pid" 2>/dev/null
        sleep 1
        rm -rf "$dir"
    fi
) >/dev/null 2>&1 </dev/null &

i=0
until "$bindir/pg_isready" -q -h "$dir" -p 5432 -U ctxtest -d postgres; do
    if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 300 ]; then
        echo "pg_run: the server did not start:" >&2
        cat "$dir/server.log" >&2
        exit 1
    fi
    sleep 0.1
    i=$((i + 1))
done

export PGHOST="$dir" PGPORT=5432 PGUSER=ctxtest PGDATABASE=postgres
status=0
"$@" || status=$?
exit "$status"
