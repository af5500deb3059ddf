// Message time to live: an expired message is not delivered.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

OutgoingMessage with_ttl(const std::string& payload,
                         std::chrono::milliseconds ttl) {
  OutgoingMessage m;
  m.payload = payload;
  m.ttl = ttl;
  return m;
}

TEST_CASE("ttl: an expired message is skipped, a live one delivered") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish_async("news", {with_ttl("stale", 200ms),
                                 with_ttl("forever", 0ms),
                                 with_ttl("fresh", 60s)});
  client->flush();
  std::this_thread::sleep_for(400ms);

  SubscribeOptions options = durable("news", "reader");
  auto sub = client->subscribe(options);
  std::vector<std::string> got;
  for (const auto& m : receive(sub, 10, 500ms, 5s)) got.push_back(m.payload);
  CHECK(got == std::vector<std::string>{"forever", "fresh"});
  // The expired one counts as done: nothing is left behind.
  CHECK(client->topics("news")[0].subscriptions[0].lag == 0);
}

TEST_CASE("ttl: an unacked message is not redelivered after it expired") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish_async("jobs", {with_ttl("short-lived", 300ms)});
  client->flush();
  SubscribeOptions options = durable("jobs", "w");
  auto sub = client->subscribe(options);
  auto m = sub.next(2s);
  REQUIRE(m);
  std::this_thread::sleep_for(400ms);
  sub.nack(*m);
  CHECK_FALSE(sub.next(500ms));
}

}  // namespace
}  // namespace tern::test
