# The two commands of the README: `make run` and `make test`. Everything else
# here serves them. CMake does the building; this file only sequences.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PTY        ?= $(CURDIR)/$(BUILD)/ttyESP
STATE      ?= $(CURDIR)/$(BUILD)/state
# The integration tests mostly wait on sockets and timers: several at once
# even on two cores.
PYTEST_JOBS ?= 4
PYTEST     := /usr/bin/python3 -m pytest -n $(PYTEST_JOBS)
FUZZ_SECONDS ?= 15
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS  += --no-print-directory

.PHONY: all deps build run test unit integration asan fuzz fuzz-run clean bench

all: build

deps:
	@sh scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	@echo "espatd: AT modem on $(PTY) -- open it with: /usr/bin/python3 -m serial.tools.miniterm --eol CRLF $(PTY) 115200   (Ctrl-C here stops it)"
	@$(BUILD)/espatd --pty $(PTY) --state-dir $(STATE) $(ARGS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

integration: build
	@ESPATD_BIN=$(CURDIR)/$(BUILD)/espatd $(PYTEST) -q tests/integration

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DESPATD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)
	@ESPATD_BIN=$(CURDIR)/$(ASAN_BUILD)/espatd ESPATD_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTEST) -q tests/integration

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DESPATD_FUZZ=ON -DESPATD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test: unit integration asan fuzz
	@echo "make test: all suites passed"

# Throughput, latency and resource figures beside their baselines (socat,
# a minimal AT responder), ~2 minutes; not part of `make test`. The table
# goes to stdout, the JSON to $(BUILD)/bench.json; docs/performance.md
# explains every figure. BENCH_ARGS passes options (bench/bench.py --help).
bench: build
	@/usr/bin/python3 bench/bench.py --bin $(CURDIR)/$(BUILD)/espatd \
	  --json $(CURDIR)/$(BUILD)/bench.json $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
