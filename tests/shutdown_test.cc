// Shutdown under load: SIGTERM while publishers and consumers are busy loses
// nothing that was confirmed, and the broker starts again cleanly.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("shutdown: SIGTERM under load loses no confirmed message") {
  BrokerProcess broker;
  std::mutex mu;
  std::map<uint64_t, std::string> confirmed;  // offset -> payload

  auto producer = Client::connect(broker.address());
  auto consumer = Client::connect(broker.address());
  SubscribeOptions options;
  options.topic = "busy";
  options.subscription = "worker";
  options.start = StartPosition::kEarliest;
  auto sub = consumer->subscribe(options);

  std::atomic<bool> stop{false};
  std::thread consuming([&] {
    try {
      while (!stop) {
        if (auto m = sub.next(50ms)) sub.ack(*m);
      }
    } catch (const Error&) {  // the broker went away: expected
    }
  });
  std::thread publishing([&] {
    try {
      for (int i = 0; i < 1000000 && !stop; ++i) {
        std::string payload = "m" + std::to_string(i);
        producer->publish_async(
            "busy", {{payload, {}, {}, {}}},
            [&, payload](const std::vector<PublishResult>& results) {
              if (results[0].error != ErrorCode::kNone) return;
              std::lock_guard<std::mutex> lock(mu);
              confirmed[results[0].offset] = payload;
            });
      }
    } catch (const Error&) {  // the broker went away: expected
    }
  });

  // Let it get busy, then stop it politely.
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    std::lock_guard<std::mutex> lock(mu);
    if (confirmed.size() > 5000) break;
  }
  CHECK(broker.stop() == 0);
  stop = true;
  publishing.join();
  consuming.join();
  producer.reset();
  consumer.reset();

  std::map<uint64_t, std::string> expected;
  {
    std::lock_guard<std::mutex> lock(mu);
    expected = confirmed;
  }
  INFO("confirmed before SIGTERM: " << expected.size());
  REQUIRE(expected.size() > 0);

  broker.restart();
  auto stored = read_topic(broker.address(), "busy");
  std::map<uint64_t, std::string> found;
  uint64_t previous = 0;
  bool increasing = true;
  for (size_t i = 0; i < stored.size(); ++i) {
    if (i > 0 && stored[i].offset <= previous) increasing = false;
    previous = stored[i].offset;
    found[stored[i].offset] = stored[i].payload;
  }
  CHECK(increasing);
  size_t missing = 0;
  for (const auto& [offset, payload] : expected) {
    auto it = found.find(offset);
    if (it == found.end() || it->second != payload) ++missing;
  }
  CHECK(missing == 0);
  CHECK(broker.log().find("received Terminated") != std::string::npos);
}

}  // namespace
}  // namespace tern::test
