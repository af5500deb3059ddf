# Tern build. `make` builds everything into build/; see README.md for the rest.
#
# The first thing every target does is make sure the Debian packages the build
# needs are installed (apt-get, non-interactive, only what is missing), so that
# `make run` and `make test` work as the very first commands on a fresh machine.

PACKAGES := g++ make libuv1-dev librocksdb-dev flatbuffers-compiler \
            libflatbuffers-dev doctest-dev

MAKEFLAGS += -j$(shell nproc)

BUILD    ?= build
CXX      ?= g++
SANITIZE ?=
OPT      ?= -O2 -g
CXXFLAGS := $(OPT) -std=c++17 -Wall -Wextra -Werror -pthread $(SANITIZE) \
            -I$(BUILD)/gen -Iprotocol -Istorage -Ibroker -Iclient/include -Iclient
LDFLAGS  := -pthread $(SANITIZE)

LISTEN ?= 127.0.0.1:7411
DATA   ?= ./data
FSYNC  ?= always

PROTOCOL_SRC := $(wildcard protocol/*.cc)
STORAGE_SRC  := $(wildcard storage/*.cc)
BROKER_SRC   := $(filter-out broker/main.cc,$(wildcard broker/*.cc))
CLIENT_SRC   := $(filter-out client/tern_cli.cc,$(wildcard client/*.cc))
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

# The client library carries the protocol objects so users link one archive.
$(BUILD)/libternclient.a: $(call obj,$(CLIENT_SRC) $(PROTOCOL_SRC))
	ar rcs $@ $^

$(BUILD)/tern-broker: $(call obj,broker/main.cc $(BROKER_SRC)) $(BUILD)/libternstorage.a $(BUILD)/libternproto.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lrocksdb -luv

$(BUILD)/tern: $(call obj,client/tern_cli.cc) $(BUILD)/libternclient.a
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/tern-bench: $(call obj,$(BENCH_SRC)) $(BUILD)/libternclient.a
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/tern-tests: $(call obj,$(TEST_SRC)) $(BUILD)/libternclient.a $(BUILD)/libternstorage.a $(BUILD)/libternproto.a
	$(CXX) $(LDFLAGS) -o $@ $^ -lrocksdb

test: $(BUILD)/tern-tests $(BUILD)/tern-broker $(BUILD)/tern
	TERN_BROKER=$(BUILD)/tern-broker TERN_CLI=$(BUILD)/tern $(BUILD)/tern-tests

run: $(BUILD)/tern-broker $(BUILD)/tern
	$(BUILD)/tern-broker --listen $(LISTEN) --data $(DATA) --fsync $(FSYNC)

# The standard scenarios against a broker of its own (see bench/run.sh).
bench: $(BUILD)/tern-bench $(BUILD)/tern-broker
	bench/run.sh $(BUILD)

# AddressSanitizer + UndefinedBehaviorSanitizer over the whole test suite.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all" test

format:
	clang-format -i $(wildcard */*.h */*.cc client/include/tern/*.h)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
