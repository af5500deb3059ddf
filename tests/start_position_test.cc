// Start positions: a new subscription can start at an offset or at a time,
// besides the earliest and the latest message.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

void publish_n(Client& client, const std::string& topic, int n,
               const std::string& prefix) {
  for (int i = 0; i < n; ++i) client.publish(topic, prefix + std::to_string(i));
}

std::vector<std::string> payloads_from(const std::string& address,
                                       SubscribeOptions options) {
  auto client = Client::connect(address);
  auto sub = client->subscribe(options);
  std::vector<std::string> out;
  for (const auto& m : receive(sub, 1000, 500ms, 10s)) out.push_back(m.payload);
  return out;
}

// Publishes five "early" messages, then three "late" ones a little later;
// returns a time between the two.
std::chrono::system_clock::time_point early_then_late(Client& client,
                                                      const std::string& topic) {
  publish_n(client, topic, 5, "early");
  std::this_thread::sleep_for(30ms);
  auto cut = std::chrono::system_clock::now();
  std::this_thread::sleep_for(30ms);
  publish_n(client, topic, 3, "late");
  return cut;
}

TEST_CASE("start position: a new subscription can start at an offset") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  publish_n(*client, "log", 6, "m");

  SubscribeOptions options;
  options.topic = "log";
  options.subscription = "from-4";
  options.start = StartPosition::kOffset;
  options.start_offset = 4;
  CHECK(payloads_from(broker.address(), options) ==
        std::vector<std::string>{"m4", "m5"});

  // Past the end: it starts with the next message published.
  options.subscription = "from-future";
  options.start_offset = 1000;
  auto late = Client::connect(broker.address());
  auto sub = late->subscribe(options);
  client->publish("log", "next");
  auto got = receive(sub, 10, 500ms, 5s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "next");
  CHECK(got[0].offset == 6);
}

TEST_CASE("start position: a new subscription can start at a time") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto cut = early_then_late(*client, "events");

  SubscribeOptions options;
  options.topic = "events";
  options.subscription = "since-cut";
  options.start = StartPosition::kTime;
  options.start_time = cut;
  std::vector<std::string> late = {"late0", "late1", "late2"};
  CHECK(payloads_from(broker.address(), options) == late);

  // After a restart the tail is empty and the search reads the store.
  client.reset();
  CHECK(broker.stop() == 0);
  broker.restart();
  options.subscription = "since-cut-after-restart";
  CHECK(payloads_from(broker.address(), options) == late);
  options.subscription = "since-the-start";
  options.start_time = cut - std::chrono::hours(1);
  CHECK(payloads_from(broker.address(), options).size() == 8);
}

TEST_CASE("start position: a wildcard subscription starts at a time on each topic") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  publish_n(*client, "zone.a", 4, "a-early");
  publish_n(*client, "zone.b", 2, "b-early");
  std::this_thread::sleep_for(30ms);
  auto cut = std::chrono::system_clock::now();
  std::this_thread::sleep_for(30ms);
  publish_n(*client, "zone.a", 1, "a-late");
  publish_n(*client, "zone.b", 2, "b-late");

  SubscribeOptions options;
  options.topic = "zone.*";
  options.start = StartPosition::kTime;
  options.start_time = cut;
  std::vector<std::string> got = payloads_from(broker.address(), options);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"a-late0", "b-late0", "b-late1"});
}

TEST_CASE("start position: tern sub --from offset:N") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  publish_n(*client, "cli-log", 5, "c");
  auto result = run_program({cli_binary(), "--server", broker.address(), "sub",
                             "cli-log", "--from", "offset:3", "--count", "2",
                             "--timeout", "3"},
                            "", 10s);
  CHECK(result.exit_code == 0);
  CHECK(result.out == "c3\nc4\n");
  auto bad = run_program({cli_binary(), "--server", broker.address(), "sub",
                          "cli-log", "--from", "offset:x"},
                         "", 10s);
  CHECK(bad.exit_code == 2);
}

TEST_CASE("start position: a durable subscription can be reset") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  publish_n(*client, "replay", 5, "r");
  SubscribeOptions options = durable("replay", "reader");
  {
    auto consumer = Client::connect(broker.address());
    auto sub = consumer->subscribe(options);
    CHECK(receive(sub, 5, 500ms, 5s).size() == 5);  // and acked
  }

  // Back to offset 2: 2, 3 and 4 come again, to a consumer still attached.
  auto consumer = Client::connect(broker.address());
  auto sub = consumer->subscribe(options);
  CHECK_FALSE(sub.next(200ms));
  SubscribeOptions to = options;
  to.start = StartPosition::kOffset;
  to.start_offset = 2;
  CHECK(client->reset_subscription(to) == 2);
  std::vector<std::string> again;
  for (const auto& m : receive(sub, 10, 500ms, 5s)) again.push_back(m.payload);
  CHECK(again == std::vector<std::string>{"r2", "r3", "r4"});

  // To the end, from the CLI: nothing is left to deliver.
  auto cli = run_program({cli_binary(), "--server", broker.address(), "subs",
                          "reset", "replay", "reader", "--to", "earliest"},
                         "", 10s);
  CHECK(cli.exit_code == 0);
  CHECK(cli.out.find("now starts at offset 0") != std::string::npos);
  CHECK(receive(sub, 10, 500ms, 5s).size() == 5);
  to.start = StartPosition::kLatest;
  CHECK(client->reset_subscription(to) == 5);
  CHECK(client->topics("replay")[0].subscriptions[0].lag == 0);

  // Only existing durable subscriptions can be reset.
  to.subscription = "nobody";
  CHECK_THROWS_AS(client->reset_subscription(to), Error);
}

TEST_CASE("start position: a durable subscription can be reset to a time") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto cut = early_then_late(*client, "audit");

  // A consumer holding all eight unacked when the reset comes: what it
  // holds is forgotten, and from the cut on everything comes again.
  SubscribeOptions to = durable("audit", "auditor");
  to.start = StartPosition::kTime;
  to.start_time = cut;
  {
    auto consumer = Client::connect(broker.address());
    auto sub = consumer->subscribe(durable("audit", "auditor"));
    CHECK(receive(sub, 8, 500ms, 5s, false).size() == 8);
    CHECK(client->reset_subscription(to) == 5);
    std::vector<std::string> again;
    for (const auto& m : receive(sub, 10, 500ms, 5s))
      again.push_back(m.payload);
    CHECK(again == std::vector<std::string>{"late0", "late1", "late2"});
  }

  // After a restart nothing is in memory: the lookup reads the store.
  client.reset();
  CHECK(broker.stop() == 0);
  broker.restart();
  client = Client::connect(broker.address());
  to.start_time = cut + std::chrono::hours(1);
  CHECK(client->reset_subscription(to) == 8);  // after everything: the end
  to.start_time = cut;
  CHECK(client->reset_subscription(to) == 5);
  CHECK(client->topics("audit")[0].subscriptions[0].lag == 3);
}

TEST_CASE("start position: a confirmed reset survives kill -9 at once") {
  BrokerProcess broker;  // --fsync always
  {
    auto client = Client::connect(broker.address());
    publish_n(*client, "rewind", 5, "m");
    SubscribeOptions latest = durable("rewind", "r");
    latest.start = StartPosition::kLatest;
    client->subscribe(latest);
  }
  // ResetOk says the new position is stored: a crash right after it must
  // not bring back the old one. Alternating ends, so each round moves it.
  for (int round = 0; round < 6; ++round) {
    auto client = Client::connect(broker.address());
    SubscribeOptions to = durable("rewind", "r");
    to.start =
        round % 2 == 0 ? StartPosition::kEarliest : StartPosition::kLatest;
    uint64_t start = client->reset_subscription(to);
    broker.kill9();
    client.reset();
    broker.restart();
    client = Client::connect(broker.address());
    CAPTURE(round);
    CHECK(start == (round % 2 == 0 ? 0u : 5u));
    CHECK(client->topics("rewind")[0].subscriptions[0].ack_floor == start);
  }
}

TEST_CASE("start position: a reset to a time overtaken by another reset") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto cut = early_then_late(*client, "race");
  SubscribeOptions latest = durable("race", "r");
  latest.start = StartPosition::kLatest;
  client->subscribe(latest);  // creates it

  // Sent back to back on one connection: the time is still being looked up
  // when the second reset arrives. Both are answered, and the later one
  // is where the subscription ends up.
  RawConnection raw(broker.address());
  REQUIRE(raw.hello().type == wire::Body::HelloOk);
  auto reset = [&](uint64_t request_id, wire::StartPosition start,
                   uint64_t offset, int64_t time_ms, const char* name = "r") {
    flatbuffers::FlatBufferBuilder fbb;
    frame::finish(fbb, wire::Body::ResetSubscription,
                  wire::CreateResetSubscriptionDirect(fbb, request_id, "race",
                                                      name, start, offset,
                                                      time_ms)
                      .Union());
    REQUIRE(raw.send_frame(fbb));
  };
  int64_t cut_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       cut.time_since_epoch())
                       .count();
  reset(7, wire::StartPosition::Time, 0, cut_ms);
  reset(8, wire::StartPosition::Offset, 1, 0);
  std::map<uint64_t, uint64_t> answers;  // request id -> offset
  for (int i = 0; i < 2; ++i) {
    Reply reply = raw.next(5s);
    REQUIRE(reply.type == wire::Body::ResetOk);
    answers[reply.request_id] = reply.offset;
  }
  CHECK(answers == std::map<uint64_t, uint64_t>{{7, 5}, {8, 1}});
  CHECK(client->topics("race")[0].subscriptions[0].lag == 7);

  // A reset of a subscription that does not exist is refused at once.
  reset(9, wire::StartPosition::Time, 0, cut_ms, "nobody");
  Reply refused = raw.next(5s);
  CHECK(refused.type == wire::Body::Error);
  CHECK(refused.request_id == 9);
  // So is a start position this broker does not know.
  reset(10, wire::StartPosition(9), 0, 0);
  Reply unknown = raw.next(5s);
  CHECK(unknown.type == wire::Body::Error);
  CHECK(unknown.code == wire::ErrorCode::InvalidSubscription);
  CHECK(unknown.message.find("unknown start position 9") != std::string::npos);
}

}  // namespace
}  // namespace tern::test

namespace tern::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("replay: subscriptions far behind a small tail read everything back") {
  // A 64 KiB tail: almost all of the 4 MB below comes back from the store,
  // in stretches read on the broker's reader thread.
  BrokerOptions options;
  options.extra_args = {"--tail-bytes", "64KiB"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  const int n = 20000;
  for (int i = 0; i < n; i += 500) {
    std::vector<OutgoingMessage> batch;
    for (int j = i; j < i + 500; ++j) {
      OutgoingMessage m;
      m.payload = std::to_string(j) + std::string(180, '.');
      batch.push_back(std::move(m));
    }
    client->publish_async("history", batch);
  }
  client->flush();

  // Two replays at once, at different places, plus a nack with reject and a
  // plain nack from behind the tail.
  SubscribeOptions a = durable("history", "from-start");
  SubscribeOptions b = a;
  b.subscription = "from-middle";
  b.start = StartPosition::kOffset;
  b.start_offset = n / 2;
  auto client_b = Client::connect(broker.address());
  auto sub_a = client->subscribe(a);
  auto sub_b = client_b->subscribe(b);

  auto first = sub_a.next(5s);
  REQUIRE(first);
  CHECK(first->offset == 0);
  sub_a.reject(*first);
  auto second = sub_a.next(5s);
  REQUIRE(second);
  CHECK(second->offset == 1);
  sub_a.nack(*second);

  std::vector<uint64_t> got_a, got_b;
  std::thread reader_b([&] {
    for (const auto& m : receive(sub_b, n, 2s, 60s)) got_b.push_back(m.offset);
  });
  for (const auto& m : receive(sub_a, n, 2s, 60s)) {
    got_a.push_back(m.offset);
    if (m.offset != 1) CHECK(m.payload.rfind(std::to_string(m.offset) + ".", 0) == 0);
  }
  reader_b.join();

  // A got 1 again (nacked) and everything after it, once; 0 went to the DLQ.
  std::sort(got_a.begin(), got_a.end());
  REQUIRE(got_a.size() == size_t(n - 1));
  for (size_t i = 0; i < got_a.size(); ++i) CHECK(got_a[i] == i + 1);
  REQUIRE(got_b.size() == size_t(n / 2));
  for (size_t i = 0; i < got_b.size(); ++i) CHECK(got_b[i] == n / 2 + i);
  auto dead = read_topic(broker.address(), "history.dlq");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].payload.rfind("0.", 0) == 0);
}

}  // namespace
}  // namespace tern::test
