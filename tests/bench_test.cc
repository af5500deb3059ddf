// tern-bench against a real broker: publish only (--consumers 0), a replay
// (consume only, of what it published first), and the latency file.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "broker_process.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

std::string bench_binary() {
  // Next to tern-broker: `make test` builds both.
  std::string bench = broker_binary();
  bench.replace(bench.rfind("tern-broker"), 11, "tern-bench");
  return bench;
}

TEST_CASE("bench: publish only, with the latency distribution in a file") {
  BrokerProcess broker;
  std::string dir = make_temp_dir("tern-bench-test");
  std::string latency = dir + "/latency.json";
  RunResult run =
      run_program({bench_binary(), "--server", broker.address(), "--consumers",
                   "0", "--count", "3000", "--batch", "10", "--json", "--quiet",
                   "--latency-out", latency},
                  "", 60s);
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("\"publish_only\":true") != std::string::npos);
  std::string file = read_file(latency);
  INFO("latency file: " << file);
  CHECK(file.find("\"format\":\"tern-bench-latency/1\"") != std::string::npos);
  CHECK(file.find("\"e2e\":null") != std::string::npos);
  CHECK(file.find("\"confirm\":{\"count\":3000,") != std::string::npos);
  CHECK(file.find("\"percentile_curve\":[[0,") != std::string::npos);
  remove_tree(dir);

  // Nothing was consumed: the topic holds all of it, no subscription.
  auto client = Client::connect(broker.address());
  uint64_t stored = 0;
  for (const TopicInfo& t : client->topics()) {
    stored += t.messages;
    CHECK(t.subscriptions.empty());
  }
  CHECK(stored == 3000);
}

TEST_CASE("bench: a replay consumes what was published, exactly once") {
  BrokerProcess broker;
  RunResult run =
      run_program({bench_binary(), "--server", broker.address(), "--replay",
                   "--count", "3000", "--batch", "10", "--json", "--quiet"},
                  "", 60s);
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("\"replay\":true") != std::string::npos);
  CHECK(run.out.find("\"lost\":0") != std::string::npos);
  CHECK(run.out.find("\"duplicates\":0") != std::string::npos);
}

}  // namespace
}  // namespace tern::test
