# Tern build. `make` builds everything into build/; see README.md for the rest.
#
# The first thing every target does is make sure the Debian packages the build
# needs are installed (apt-get, non-interactive, only what is missing), so that
# `make run` and `make test` work as the very first commands on a fresh machine.

PACKAGES := g++ make libuv1-dev librocksdb-dev flatbuffers-compiler \
            libflatbuffers-dev doctest-dev libcli11-dev libtomlplusplus-dev \
            libsodium-dev libssl-dev openssl libcpp-httplib-dev \
            nlohmann-json3-dev

MAKEFLAGS += -j$(shell nproc)

BUILD    ?= build
CXX      ?= g++
SANITIZE ?=
OPT      ?= -O2 -g
# Debian's cpp-httplib is a compiled library: its users must see the header
# as it was built (its pkg-config Cflags).
HTTPLIB_DEFINES := -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT \
                   -DCPPHTTPLIB_BROTLI_SUPPORT
CXXFLAGS := $(OPT) -std=c++17 -Wall -Wextra -Werror -pthread $(SANITIZE) \
            -I$(BUILD)/gen -Iprotocol -Istorage -Ibroker -Iclient/include -Iclient \
            -Icli $(HTTPLIB_DEFINES)
LDFLAGS  := -pthread $(SANITIZE)

LISTEN ?= 127.0.0.1:7411
DATA   ?= ./data
FSYNC  ?= always

PROTOCOL_SRC := $(wildcard protocol/*.cc)
CLI_SRC      := $(wildcard cli/*.cc)
STORAGE_SRC  := $(wildcard storage/*.cc)
BROKER_SRC   := $(filter-out broker/main.cc,$(wildcard broker/*.cc))
# The tern command-line tool: client/tern_*.cc.
CLI_TOOL_SRC := $(wildcard client/tern_*.cc)
CLIENT_SRC   := $(filter-out $(CLI_TOOL_SRC),$(wildcard client/*.cc))
BENCH_SRC    := $(wildcard bench/*.cc)
TEST_SRC     := $(wildcard tests/*.cc)

obj = $(patsubst %.cc,$(BUILD)/obj/%.o,$(1))
GENERATED := $(BUILD)/gen/tern_generated.h

.PHONY: all deps test run asan clean format bench
all: $(BUILD)/tern-broker $(BUILD)/tern $(BUILD)/libternclient.a $(BUILD)/tern-tests \
     $(BUILD)/tern-bench

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing packages:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(GENERATED): protocol/tern.fbs | deps
	@mkdir -p $(dir $@)
	flatc --cpp --scoped-enums -o $(dir $@) $<

$(BUILD)/obj/%.o: %.cc $(GENERATED) | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libternproto.a: $(call obj,$(PROTOCOL_SRC))
	ar rcs $@ $^

$(BUILD)/libternstorage.a: $(call obj,$(STORAGE_SRC))
	ar rcs $@ $^

# What tern, tern-broker and tern-bench share to read their flags and files.
$(BUILD)/libterncli.a: $(call obj,$(CLI_SRC))
	ar rcs $@ $^

# The client library carries the protocol objects so users link one archive.
$(BUILD)/libternclient.a: $(call obj,$(CLIENT_SRC) $(PROTOCOL_SRC))
	ar rcs $@ $^

$(BUILD)/tern-broker: $(call obj,broker/main.cc $(BROKER_SRC)) $(BUILD)/libternstorage.a $(BUILD)/libternproto.a $(BUILD)/libterncli.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lrocksdb -luv -lsodium -lcpp-httplib -lssl -lcrypto

$(BUILD)/tern: $(call obj,$(CLI_TOOL_SRC)) $(BUILD)/libternclient.a $(BUILD)/libterncli.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lssl -lcrypto

$(BUILD)/tern-bench: $(call obj,$(BENCH_SRC)) $(BUILD)/libternclient.a $(BUILD)/libterncli.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lssl -lcrypto

$(BUILD)/tern-tests: $(call obj,$(TEST_SRC)) $(BUILD)/libternclient.a $(BUILD)/libternstorage.a $(BUILD)/libternproto.a $(BUILD)/libterncli.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lrocksdb -lcpp-httplib -lssl -lcrypto

# What only the tests need: promtool (Debian's prometheus) checks /metrics.
TEST_PACKAGES := prometheus

test: $(BUILD)/tern-tests $(BUILD)/tern-broker $(BUILD)/tern $(BUILD)/tern-bench
	@$(MAKE) --no-print-directory deps PACKAGES="$(TEST_PACKAGES)"
	TERN_BROKER=$(BUILD)/tern-broker TERN_CLI=$(BUILD)/tern $(BUILD)/tern-tests

run: $(BUILD)/tern-broker $(BUILD)/tern
	$(BUILD)/tern-broker --listen $(LISTEN) --data $(DATA) --fsync $(FSYNC)

# The standard scenarios against a broker of its own (see bench/run.sh).
bench: $(BUILD)/tern-bench $(BUILD)/tern-broker
	bench/run.sh $(BUILD)

# AddressSanitizer + UndefinedBehaviorSanitizer over the whole test suite.
# The sanitizer builds' directories can be moved (ASAN_BUILD=..., TSAN_BUILD=...)
# so that two checkouts or two people do not share one.
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
asan:
	$(MAKE) BUILD=$(ASAN_BUILD) OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all" test

format:
	clang-format -i $(wildcard */*.h */*.cc client/include/tern/*.h)

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------
# Crash safety and hostile input: the crash loop, fuzzing, ThreadSanitizer.
# ---------------------------------------------------------------------------

.PHONY: crash-test fuzz fuzz-targets fuzz-seeds tsan

# The long crash loop (tests/crash_loop.h): kill -9 under load, CRASH_ITERATIONS
# times. CRASH_SEED reproduces a run's kill times; CRASH_SECONDS bounds it
# (no new iteration starts after that). `make test` runs a short one.
CRASH_ITERATIONS ?= 50
CRASH_SECONDS    ?= 900
CRASH_SRC := tests/crash/main.cc tests/crash_loop.cc tests/crash_loop_reconnect.cc \
             tests/broker_process.cc

$(BUILD)/tern-crash-loop: $(call obj,$(CRASH_SRC)) $(BUILD)/libternclient.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lssl -lcrypto

crash-test: $(BUILD)/tern-crash-loop $(BUILD)/tern-broker
	CRASH_ITERATIONS=$(CRASH_ITERATIONS) CRASH_SECONDS=$(CRASH_SECONDS) \
	  TERN_BROKER=$(BUILD)/tern-broker $(BUILD)/tern-crash-loop

# libFuzzer targets (tests/fuzz/*_fuzz.cc), built with clang++ into build-fuzz
# with ASan and UBSan. The library objects are compiled with coverage
# instrumentation too (fuzzer-no-link), and session_fuzz drives a tern-broker
# from the same build. `make fuzz` runs each target for FUZZ_SECONDS (see
# tests/fuzz/run.sh); `make fuzz-seeds` rewrites tests/fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(basename $(notdir $(wildcard tests/fuzz/*_fuzz.cc)))
FUZZ_MAKE := $(MAKE) BUILD=build-fuzz CXX=clang++ \
  OPT="-O1 -g -fno-omit-frame-pointer" \
  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize=fuzzer-no-link"

fuzz:
	$(MAKE) deps PACKAGES="clang libclang-rt-14-dev"
	$(FUZZ_MAKE) fuzz-targets
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)
	TERN_FUZZ_USERS=1 tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) session_fuzz

fuzz-targets: $(BUILD)/tern-broker $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))

# Keep the targets' objects: make would delete them as intermediates.
.PRECIOUS: $(BUILD)/obj/tests/fuzz/%.o
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libternstorage.a $(BUILD)/libternproto.a
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ -lrocksdb

fuzz-seeds:
	$(FUZZ_MAKE) build-fuzz/make-seeds
	build-fuzz/make-seeds tests/fuzz/corpus

$(BUILD)/make-seeds: $(BUILD)/obj/tests/fuzz/make_seeds.o $(BUILD)/libternstorage.a $(BUILD)/libternproto.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lrocksdb

# ThreadSanitizer over the whole test suite, broker included. RocksDB and
# libuv are not instrumented; tests/tsan.supp says what that costs.
tsan:
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp $(TSAN_OPTIONS)" \
	$(MAKE) BUILD=$(TSAN_BUILD) OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=thread" test

# The dashboard in headless Chromium (tests/browser/dashboard_test.sh):
# publishes and consumes, loads / and checks what the browser rendered;
# leaves dashboard.html and dashboard.png in $(BUILD).
.PHONY: browser-test
browser-test: $(BUILD)/tern-broker $(BUILD)/tern
	@$(MAKE) --no-print-directory deps PACKAGES=chromium
	tests/browser/dashboard_test.sh $(BUILD)

# ---------------------------------------------------------------------------
# Storage faults and simulated power cuts (tests/fault_fs.h,
# tests/power_cut_fs.h). The fault tests in `make test` drive the broker's
# committer in-process, so tern-tests links it (and libuv).
# ---------------------------------------------------------------------------

$(BUILD)/tern-tests: $(call obj,broker/committer.cc broker/log.cc broker/producer_sequences.cc)
$(BUILD)/tern-tests: LDFLAGS += -Wl,--no-as-needed -luv

# The long simulated power-cut loop (tests/power_cut.h): POWER_CUT_ITERATIONS
# cuts with fsync, a tenth as many without; POWER_CUT_SEED replays a run,
# POWER_CUT_SECONDS bounds each. `make test` runs a short one.
POWER_CUT_ITERATIONS ?= 300
POWER_CUT_SECONDS    ?= 900
POWER_CUT_SRC := tests/power_cut/main.cc tests/power_cut.cc tests/power_cut_fs.cc

.PHONY: power-cut-test
$(BUILD)/tern-power-cut: $(call obj,$(POWER_CUT_SRC)) $(BUILD)/libternstorage.a $(BUILD)/libternproto.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lrocksdb

power-cut-test: $(BUILD)/tern-power-cut
	POWER_CUT_ITERATIONS=$(POWER_CUT_ITERATIONS) POWER_CUT_SECONDS=$(POWER_CUT_SECONDS) \
	  POWER_CUT_SEED=$(POWER_CUT_SEED) $(BUILD)/tern-power-cut
