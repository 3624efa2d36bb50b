#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what building and testing libctx needs, when it is missing.
# Debian 12: packages come from apt; run as root (or install them yourself).
set -eu

# Beyond the toolchain: the demo server's HTTP parser, load generator and
# the Prometheus parser its test uses; the adapters' libraries and the
# servers their tests start (PostgreSQL, python3-grpcio for the gRPC test
# server), and the isolated decoder's image library; hyperfine for
# bench/bench_ctxrun.sh (it falls back to a C loop without it).
pkgs="cmake ninja-build gcc clang clang-format libclang-rt-14-dev pkg-config
      python3 strace binutils procps util-linux python3-prometheus-client
      libhttp-parser-dev wrk hyperfine
      postgresql libpq-dev libcurl4-openssl-dev libgrpc-dev python3-grpcio
      libpng-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "libctx setup: missing packages:$missing" >&2
    echo "libctx setup: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "libctx setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -q $missing >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
