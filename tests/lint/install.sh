#!/bin/sh
# SPDX-License-Identifier: MIT
# Install into a temporary prefix and build a program against it, with
# pkg-config (shared and static) and with CMake's find_package.
#   install.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/ctx/ctx.h"
ls "$prefix"/lib*/libctx.so.* >/dev/null
ls "$prefix"/lib*/libctx.a >/dev/null
libdir=$(dirname "$(ls "$prefix"/lib*/libctx.a | head -n 1)")
soname=$(readelf -d "$libdir/libctx.so" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
case "$soname" in
libctx.so.[0-9]*) ;;
*) echo "install: unexpected soname '$soname'" >&2; exit 1 ;;
esac

export PKG_CONFIG_PATH=$libdir/pkgconfig
prog=$src/tests/lint/consumer/main.c
# shellcheck disable=SC2046
cc -o "$tmp/shared" "$prog" $(pkg-config --cflags --libs libctx)
LD_LIBRARY_PATH=$libdir "$tmp/shared" | grep -q '^consumer: ok'
# shellcheck disable=SC2046
cc -static-libgcc -o "$tmp/static" "$prog" $(pkg-config --cflags libctx) \
    "$libdir/libctx.a" $(pkg-config --static --libs-only-other libctx)
"$tmp/static" | grep -q '^consumer: ok'
if readelf -d "$tmp/static" | grep -q 'libctx.so'; then
    echo "install: static program links libctx.so" >&2
    exit 1
fi

cmake -S "$src/tests/lint/consumer" -B "$tmp/cm" -G Ninja \
    -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/cm/consumer" | grep -q '^consumer: ok'
# Each adapter installed: its header, its pkg-config module (shared and
# static libraries) and its CMake component.
adapters=""
for pc in "$libdir"/pkgconfig/libctx-*.pc; do
    [ -e "$pc" ] || continue
    name=$(basename "$pc" .pc)
    name=${name#libctx-}
    adapters="$adapters $name"
    test -f "$prefix/include/ctx/$name.h"
    ls "$libdir/libctx-$name.a" >/dev/null
    aprog=$src/tests/lint/consumer/adapter/$name.c
    # shellcheck disable=SC2046
    cc -o "$tmp/a-$name" "$aprog" $(pkg-config --cflags --libs "libctx-$name")
    LD_LIBRARY_PATH=$libdir "$tmp/a-$name" | grep -q '^consumer: ok'
    # shellcheck disable=SC2046
    cc -o "$tmp/as-$name" "$aprog" $(pkg-config --cflags "libctx-$name") \
        "$libdir/libctx-$name.a" "$libdir/libctx.a" \
        $(pkg-config --libs "libctx-$name" | sed 's/-lctx-[a-z]*//; s/-lctx\b//')
    "$tmp/as-$name" | grep -q '^consumer: ok'
    cmake -S "$src/tests/lint/consumer/adapter" -B "$tmp/cm-$name" -G Ninja \
        -DADAPTER="$name" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$tmp/cm-$name" >/dev/null
    LD_LIBRARY_PATH=$libdir "$tmp/cm-$name/consumer" | grep -q '^consumer: ok'
done
echo "install: pkg-config (shared, static) and find_package(libctx) ok;" \
    "adapters:${adapters:- none}"
