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
# libFuzzer processes per harness (fork mode) when > 1
FUZZ_JOBS  ?= 1
# What `make valgrind` runs (pytest paths / node ids)
VALGRIND_TESTS ?= tests/integration
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# harnesses fuzzed at once (each one process unless FUZZ_JOBS > 1)
FUZZ_PARALLEL ?= $(JOBS)
MAKEFLAGS  += --no-print-directory

.PHONY: all deps deps-valgrind build run test unit integration asan valgrind valgrind-smoke \
	fuzz fuzz-run clean bench

all: build

deps:
	@sh scripts/deps.sh

deps-valgrind:
	@sh scripts/deps.sh valgrind

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

# The integration suite with every espatd under valgrind memcheck: a memory
# error or a definitely/indirectly/possibly lost block fails the test
# (docs/reliability.md). About 10 minutes on two cores, so `make test` runs
# only valgrind-smoke: one test for each part that allocates (links, data
# phases, passthrough, TLS client and server, OTA over libcurl, DNS over
# c-ares, saved settings across a restart), about 20 s.
VALGRIND_SMOKE := \
	'tests/integration/test_links.py::test_tcp_multi_dinfo_and_close' \
	'tests/integration/test_links.py::test_sendex' \
	'tests/integration/test_passthrough.py::test_enter_single_tcp[whole]' \
	'tests/integration/test_ssl.py::test_auth2_verifies_the_server[TLSv1_3]' \
	'tests/integration/test_ssl.py::test_ssl_server_client_certificates' \
	'tests/integration/test_ota.py::test_set_forms_and_cipfwver' \
	'tests/integration/test_tcpip_cfg.py::test_cipdomain[whole]' \
	'tests/integration/test_persistence.py::test_cwjap_autojoin_after_at_rst'

valgrind: deps-valgrind build
	@ESPATD_BIN=$(CURDIR)/$(BUILD)/espatd ESPATD_WRAPPER=valgrind $(PYTEST) -q $(VALGRIND_TESTS)

valgrind-smoke: deps-valgrind build
	@ESPATD_BIN=$(CURDIR)/$(BUILD)/espatd ESPATD_WRAPPER=valgrind $(PYTEST) -q $(VALGRIND_SMOKE)

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DESPATD_FUZZ=ON -DESPATD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_PARALLEL)

test: unit integration valgrind-smoke asan fuzz
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
