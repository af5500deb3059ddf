// Retry backoff: redeliveries after a failed delivery (a nack without a
// delay, an ack timeout) wait the subscription's retry delays, the last one
// repeating; the delays are kept with a durable subscription.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The subscription `name` of `topic` as the broker reports it.
SubscriptionInfo info_of(Client& client, const std::string& topic,
                         const std::string& name) {
  for (const TopicInfo& t : client.topics())
    if (t.name == topic)
      for (const SubscriptionInfo& s : t.subscriptions)
        if (s.name == name) return s;
  FAIL("no subscription " << name << " on " << topic);
  return {};
}

TEST_CASE(
    "backoff: nacks wait the retry delays, the last repeating, and "
    "the delays survive a restart") {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    client->publish("flaky", "x");
    SubscribeOptions options = durable("flaky", "w");
    options.retry_delays = {300ms, 800ms};
    auto sub = client->subscribe(options);
    auto m = sub.next(5s);
    REQUIRE(m);
    auto nacked = Clock::now();
    sub.nack(*m);  // delivery 1 failed: 300 ms
    m = sub.next(5s);
    REQUIRE(m);
    auto first = Clock::now() - nacked;
    CHECK(m->attempt == 2);
    nacked = Clock::now();
    sub.nack(*m);  // delivery 2 failed: 800 ms
    m = sub.next(5s);
    REQUIRE(m);
    auto second = Clock::now() - nacked;
    nacked = Clock::now();
    sub.nack(*m);  // delivery 3: the last delay again
    m = sub.next(5s);
    REQUIRE(m);
    auto third = Clock::now() - nacked;
    CHECK(m->attempt == 4);
    MESSAGE("redelivered after " << first / 1ms << ", " << second / 1ms << ", "
                                 << third / 1ms << " ms");
    CHECK(first >= 300ms);
    CHECK(first < 300ms + 1s);
    CHECK(second >= 800ms);
    CHECK(second < 800ms + 1s);
    CHECK(third >= 800ms);
    CHECK(info_of(*client, "flaky", "w").retry_delays_ms ==
          std::vector<uint32_t>{300, 800});
    // The fourth delivery stays out, unacked, through the restart. A
    // commit after its dispatch makes sure its count is on disk.
    client->publish("barrier", "x");
  }
  broker.kill9();
  broker.restart();
  auto client = Client::connect(broker.address());
  // Subscribing again without delays keeps the stored ones.
  auto sub = client->subscribe(durable("flaky", "w"));
  CHECK(info_of(*client, "flaky", "w").retry_delays_ms ==
        std::vector<uint32_t>{300, 800});
  auto m = sub.next(5s);
  REQUIRE(m);
  CHECK(m->attempt == 5);
  auto nacked = Clock::now();
  sub.nack(*m);
  m = sub.next(5s);
  REQUIRE(m);
  CHECK(Clock::now() - nacked >= 800ms);
  sub.ack(*m);
}

TEST_CASE(
    "backoff: an ack timeout waits the retry delay too; a nack's own "
    "delay wins; 0 means at once") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("slow", "x");
  SubscribeOptions options = durable("slow", "w");
  options.ack_timeout = 200ms;
  options.retry_delays = {700ms};
  auto sub = client->subscribe(options);
  auto m = sub.next(5s);
  REQUIRE(m);
  auto delivered = Clock::now();
  m = sub.next(5s);  // not acked: the timeout, then the delay
  REQUIRE(m);
  CHECK(m->attempt == 2);
  CHECK(Clock::now() - delivered >= 900ms);
  auto nacked = Clock::now();
  sub.nack(*m, 50ms);  // its own delay, not the subscription's
  m = sub.next(5s);
  REQUIRE(m);
  CHECK(Clock::now() - nacked < 600ms);
  sub.ack(*m);

  client->publish("eager", "y");
  SubscribeOptions eager = durable("eager", "w");
  eager.retry_delays = {0ms};
  auto now_sub = client->subscribe(eager);
  m = now_sub.next(5s);
  REQUIRE(m);
  nacked = Clock::now();
  now_sub.nack(*m);
  m = now_sub.next(5s);
  REQUIRE(m);
  CHECK(Clock::now() - nacked < 300ms);
}

TEST_CASE("backoff: the broker's default, --retry-delays, and bad delays") {
  SUBCASE("the default: 100ms, 1s, 5s, 30s") {
    BrokerProcess broker;
    auto client = Client::connect(broker.address());
    client->subscribe(durable("t", "w"));
    CHECK(info_of(*client, "t", "w").retry_delays_ms ==
          std::vector<uint32_t>{100, 1000, 5000, 30000});
  }
  SUBCASE("--retry-delays") {
    BrokerOptions o;
    o.extra_args = {"--retry-delays", "250ms,2s"};
    BrokerProcess broker(o);
    auto client = Client::connect(broker.address());
    client->subscribe(durable("t", "w"));
    CHECK(info_of(*client, "t", "w").retry_delays_ms ==
          std::vector<uint32_t>{250, 2000});
  }
  SUBCASE("refused") {
    BrokerProcess broker;
    auto client = Client::connect(broker.address());
    SubscribeOptions options = durable("t", "w");
    options.retry_delays = {1s, 25h};
    try {
      client->subscribe(options);
      FAIL("a delay above a day was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInvalidSubscription);
      CHECK(std::string(e.what()).find("at most a day") != std::string::npos);
    }
    options.retry_delays.assign(33, 1s);
    CHECK_THROWS_AS(client->subscribe(options), Error);
    CHECK(client->ping().count() >= 0);  // still connected
    std::string dir = make_temp_dir("tern-backoff");
    RunResult bad = run_program(
        {broker_binary(), "--retry-delays", "1s,fast", "--data", dir + "/data"},
        "", 10s);
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("retry delays") != std::string::npos);
    remove_tree(dir);
  }
}

}  // namespace
}  // namespace tern::test
