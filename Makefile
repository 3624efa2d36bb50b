# SPDX-License-Identifier: MIT
# The front door of libctx. Every target first runs scripts/setup.sh, which
# installs what is missing on a fresh Debian 12 machine.
#
#   make            build the library, tests, examples and tools (build/)
#   make check      every test: normal (gcc), ASan+UBSan (gcc), TSan (clang),
#                   plus format, layering, symbol and install checks
#   make demo       SIGTERM to the demo HTTP server under load (wrk):
#                   the shutdown timeline, and proof that nothing was lost
#   make bench      run the benchmarks beside the peers, write bench/RESULTS.md
#   make format     reformat the sources with clang-format
#   make fuzz       each parser's libFuzzer target for FUZZ_TIME seconds (clang)
#   make install    install into PREFIX (default /usr/local)

BUILD  ?= build
FUZZ_TIME ?= 60
PREFIX ?= /usr/local
CTEST  = ctest --output-on-failure -j2 --test-dir
CONFIG = cmake -S . -G Ninja -DCTX_WERROR=ON

.PHONY: all setup build check check-normal check-asan check-tsan demo bench \
        format install clean fuzz

all: build

setup:
	@sh scripts/setup.sh

build: setup
	@$(CONFIG) -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD)

check: check-normal check-asan check-tsan
	@echo "make check: all passed"

check-normal: build
	@$(CTEST) $(BUILD)

check-asan: setup
	@CC=gcc $(CONFIG) -B build-asan -DCTX_SANITIZE=address \
	    -DCTX_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-asan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(CTEST) build-asan -LE lint

check-tsan: setup
	@CC=clang $(CONFIG) -B build-tsan -DCTX_SANITIZE=thread \
	    -DCTX_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-tsan
	@TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    $(CTEST) build-tsan -LE lint

demo: build
	@sh examples/httpd/demo.sh $(BUILD)

bench: setup
	@sh bench/run.sh

# The parsers' libFuzzer targets (ASan+UBSan), one after the other, each
# from its checked-in corpus (tests/fuzz/corpus/T); what they find goes to
# build-fuzz/corpus/T. To keep the new inputs, minimised:
#   build-fuzz/tests/fuzz_T -merge=1 tests/fuzz/corpus/T build-fuzz/corpus/T
FUZZ_TARGETS = duration timeout grpc deadline
fuzz: setup
	@CC=clang $(CONFIG) -B build-fuzz -DCTX_FUZZ=ON \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCTX_BUILD_BENCH=OFF \
	    -DCTX_BUILD_EXAMPLES=OFF >/dev/null
	@cmake --build build-fuzz --target $(FUZZ_TARGETS:%=fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t; \
	    dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	    build-fuzz/tests/fuzz_$$t -max_total_time=$(FUZZ_TIME) $$dict \
	        build-fuzz/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

format: setup
	@clang-format -i $$(git ls-files '*.c' '*.h')

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-tsan build-bench build-fuzz
