// Topic retention: by count, bytes, age and work queue, through the real
// broker and client; what is removed is gone from the store itself, the next
// offset survives it, and subscriptions that had not read it skip it.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "store.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

// Retention runs every 100 ms in these tests instead of every second.
BrokerOptions fast_retention() {
  BrokerOptions options;
  options.extra_args = {"--retention-interval", "100"};
  return options;
}

TopicInfo info(Client& client, const std::string& topic) {
  auto found = client.topics(topic);
  REQUIRE(found.size() == 1);
  return found[0];
}

// Polls the topic's info until `done` holds (true) or 10 s pass (false).
bool wait_for(Client& client, const std::string& topic,
              const std::function<bool(const TopicInfo&)>& done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(info(client, topic))) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

void publish_n(Client& client, const std::string& topic, int n,
               size_t size = 100) {
  for (int i = 0; i < n; i += 50) {
    std::vector<OutgoingMessage> batch;
    for (int j = i; j < n && j < i + 50; ++j) {
      OutgoingMessage m;
      m.payload = std::to_string(j);
      m.payload.resize(size, 'x');
      batch.push_back(std::move(m));
    }
    client.publish_async(topic, batch);
  }
  client.flush();
}

// What the store holds for `topic` once the broker is stopped: its record,
// and the offsets of its messages.
struct Stored {
  storage::TopicRecord topic;
  std::vector<uint64_t> offsets;
  uint64_t idle_floor = 0;  // ack floor of its subscription "idle", if any
};

Stored read_store(const std::string& data_dir, const std::string& name) {
  std::unique_ptr<storage::Store> store;
  storage::Options options;
  options.path = data_dir;
  REQUIRE(storage::Store::open(options, &store).is_ok());
  std::vector<storage::TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  Stored stored;
  bool found = false;
  for (const auto& t : topics)
    if (t.name == name) stored.topic = t, found = true;
  REQUIRE(found);
  std::vector<storage::SubscriptionRecord> subscriptions;
  REQUIRE(store->load_subscriptions(&subscriptions).is_ok());
  for (const auto& sub : subscriptions)
    if (sub.topic_id == stored.topic.id && sub.name == "idle")
      stored.idle_floor = sub.cursor.ack_floor;
  REQUIRE(store
              ->scan(stored.topic.id, 0,
                     [&](uint64_t offset, const char*, size_t) {
                       stored.offsets.push_back(offset);
                       return true;
                     })
              .is_ok());
  return stored;
}

TEST_CASE("retention: max messages removes the oldest, from the store too") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_messages = 100;
  CHECK(client->create_topic("metrics", settings));
  // A durable subscription that never reads: retention moves it on, and
  // that is stored like any cursor change.
  SubscribeOptions idle = durable("metrics", "idle");
  client->subscribe(idle).unsubscribe();
  publish_n(*client, "metrics", 1000);

  CHECK(wait_for(*client, "metrics",
                 [](const TopicInfo& t) { return t.messages == 100; }));
  TopicInfo t = info(*client, "metrics");
  CHECK(t.first_offset == 900);
  CHECK(t.next_offset == 1000);
  CHECK(t.settings.max_messages == 100);

  // A new subscription from the earliest starts at what is left.
  SubscribeOptions options;
  options.topic = "metrics";
  options.start = StartPosition::kEarliest;
  auto sub = client->subscribe(options);
  auto got = receive(sub, 1000, 500ms, 10s);
  REQUIRE(got.size() == 100);
  CHECK(got.front().offset == 900);
  sub.unsubscribe();

  client.reset();
  CHECK(broker.stop() == 0);
  Stored stored = read_store(broker.data_dir(), "metrics");
  CHECK(stored.offsets.size() == 100);
  CHECK(stored.offsets.front() == 900);
  CHECK(stored.topic.state.messages == 100);
  CHECK(stored.topic.settings.max_messages == 100);
  CHECK(stored.idle_floor == 900);
}

TEST_CASE("retention: the disk space really comes back") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_messages = 10;
  client->create_topic("bulk", settings);
  publish_n(*client, "bulk", 4000, 4096);  // 16 MiB
  CHECK(wait_for(*client, "bulk",
                 [](const TopicInfo& t) { return t.messages == 10; }));
  // Removed at once for readers; the disk follows once the removed range is
  // compacted (ten quiet rounds later).
  CHECK(wait_for(*client, "bulk",
                 [](const TopicInfo& t) { return t.disk_bytes < (1u << 20); }));
  CHECK(info(*client, "bulk").disk_bytes > 0);
}

TEST_CASE("retention: max bytes keeps the stored records under the limit") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_bytes = 64 * 1024;
  client->create_topic("blobs", settings);
  publish_n(*client, "blobs", 200, 4096);
  CHECK(wait_for(*client, "blobs",
                 [](const TopicInfo& t) { return t.bytes <= 64 * 1024; }));
  TopicInfo t = info(*client, "blobs");
  // Each record is a little over 4 KiB: one more would not fit.
  CHECK(t.bytes > 60 * 1024);
  CHECK(t.messages >= 14);
  CHECK(t.messages <= 15);
  CHECK(t.first_offset == 200 - t.messages);
}

TEST_CASE("retention: max age empties a topic; its next offset survives") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_age = 300ms;
  client->create_topic("events", settings);
  publish_n(*client, "events", 10);
  CHECK(info(*client, "events").messages == 10);
  CHECK(wait_for(*client, "events",
                 [](const TopicInfo& t) { return t.messages == 0; }));
  CHECK(info(*client, "events").first_offset == 10);

  // With every message gone, only the stored topic state knows the next
  // offset: after a crash it must still not hand out 0..9 again.
  client.reset();
  broker.kill9();
  broker.restart();
  client = Client::connect(broker.address());
  TopicInfo t = info(*client, "events");
  CHECK(t.first_offset == 10);
  CHECK(t.next_offset == 10);
  CHECK(t.settings.max_age == 300ms);
  CHECK(client->publish("events", "after") == 10);
}

TEST_CASE(
    "retention: a work queue drops what every durable subscription acked") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.work_queue = true;
  client->create_topic("jobs", settings);
  publish_n(*client, "jobs", 100);
  // No durable subscription yet: nobody took the work, so it all stays.
  std::this_thread::sleep_for(400ms);
  CHECK(info(*client, "jobs").messages == 100);

  SubscribeOptions options = durable("jobs", "workers", 40);
  auto workers = client->subscribe(options);
  options.subscription = "audit";
  auto audit = client->subscribe(options);
  auto done = receive(workers, 40, 500ms, 10s);
  REQUIRE(done.size() == 40);
  auto audited = receive(audit, 30, 500ms, 10s);
  REQUIRE(audited.size() == 30);
  // The slower subscription holds the rest back.
  CHECK(wait_for(*client, "jobs",
                 [](const TopicInfo& t) { return t.first_offset == 30; }));
  CHECK(info(*client, "jobs").messages == 70);
}

TEST_CASE("retention: a subscription behind the cut skips, and says so") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_messages = 10;
  client->create_topic("ticks", settings);
  {
    auto sub = client->subscribe(durable("ticks", "slow", 5));
    // It holds five without acking while 95 more arrive.
    publish_n(*client, "ticks", 5);
    auto held = receive(sub, 5, 500ms, 10s, /*ack=*/false);
    REQUIRE(held.size() == 5);
    publish_n(*client, "ticks", 95);
    CHECK(wait_for(*client, "ticks",
                   [](const TopicInfo& t) { return t.first_offset == 90; }));
    SubscriptionInfo s = info(*client, "ticks").subscriptions.at(0);
    CHECK(s.skipped == 90);
    CHECK(s.ack_floor == 90);
    CHECK(s.lag == 10);
    // What it held is forgotten; it goes on with what is left.
    for (const auto& m : held) sub.ack(m);
    auto rest = receive(sub, 100, 500ms, 10s);
    REQUIRE(rest.size() == 10);
    CHECK(rest.front().offset == 90);
    CHECK(rest.back().offset == 99);
  }

  // The count is stored with the cursor: a restart keeps it.
  client.reset();
  CHECK(broker.stop() == 0);
  broker.restart();
  client = Client::connect(broker.address());
  CHECK(info(*client, "ticks").subscriptions.at(0).skipped == 90);
}

TEST_CASE("retention: credit freed by a cut is used at once") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_messages = 5;
  client->create_topic("gauges", settings);
  SubscribeOptions options = durable("gauges", "panel", 5);
  options.ack_timeout = 2000ms;
  auto sub = client->subscribe(options);
  publish_n(*client, "gauges", 5);
  REQUIRE(receive(sub, 5, 500ms, 10s, /*ack=*/false).size() == 5);
  // Retention removes the five it holds (and more): its credit is free
  // again, and what is left must come without any other nudge (no ack, no
  // publish, no ack timeout: the removed deliveries are forgotten).
  publish_n(*client, "gauges", 20);
  auto rest = receive(sub, 5, 1500ms, 10s, /*ack=*/false);
  REQUIRE(rest.size() == 5);
  CHECK(rest.front().offset == 20);
  CHECK(rest.back().offset == 24);
}

TEST_CASE("retention: a create with other settings than the topic's fails") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.max_messages = 5;
  CHECK(client->create_topic("fixed", settings));
  CHECK_FALSE(client->create_topic("fixed", settings));  // the same: fine
  settings.max_messages = 6;
  try {
    client->create_topic("fixed", settings);
    FAIL("a create with other settings succeeded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kTopicExists);
  }
  client->publish("plain", "auto-created");
  CHECK(info(*client, "plain").settings == TopicSettings{});

  TopicSettings forever;
  forever.max_age = std::chrono::milliseconds(INT64_MAX);
  CHECK_THROWS_AS(client->create_topic("forever", forever), Error);
  CHECK(client->topics("forever").empty());

  // A temporary topic belongs to its connection: nobody else "creates" it.
  CHECK(client->create_topic("_inbox.mine", {}, /*temporary=*/true));
  CHECK_FALSE(client->create_topic("_inbox.mine", {}, true));
  auto other = Client::connect(broker.address());
  try {
    other->create_topic("_inbox.mine", {}, true);
    FAIL("another connection took over a temporary topic");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kTopicExists);
  }
}

TEST_CASE("retention: limits can be altered, and the change is stored") {
  BrokerProcess broker(fast_retention());
  auto client = Client::connect(broker.address());
  publish_n(*client, "metrics", 50);  // auto-created: no limits

  // A limit added later applies to what is there.
  TopicSettings ten;
  ten.max_messages = 10;
  client->alter_topic("metrics", ten);
  CHECK(info(*client, "metrics").settings == ten);
  CHECK(wait_for(*client, "metrics", [](const TopicInfo& t) {
    return t.first_offset == 40 && t.messages == 10;
  }));

  // Lifted again: nothing more is removed. Kept across a restart.
  client->alter_topic("metrics", TopicSettings{});
  publish_n(*client, "metrics", 20);
  std::this_thread::sleep_for(400ms);  // four retention rounds
  CHECK(info(*client, "metrics").messages == 30);
  client.reset();
  CHECK(broker.stop() == 0);
  broker.restart();
  client = Client::connect(broker.address());
  CHECK(info(*client, "metrics").settings == TopicSettings{});

  auto refused = [&](const std::string& topic, const TopicSettings& settings) {
    try {
      client->alter_topic(topic, settings);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kNone;
  };
  TopicSettings queue;
  queue.work_queue = true;
  CHECK(refused("metrics", queue) == ErrorCode::kInvalidTopic);
  CHECK(refused("nowhere", ten) == ErrorCode::kUnknownTopic);
  CHECK(client->topics("nowhere").empty());
  CHECK(client->create_topic("_inbox.x", {}, /*temporary=*/true));
  CHECK(refused("_inbox.x", ten) == ErrorCode::kInvalidTopic);
  TopicSettings forever;
  forever.max_age = std::chrono::milliseconds(INT64_MAX);
  CHECK(refused("metrics", forever) == ErrorCode::kInvalidTopic);
  CHECK(info(*client, "metrics").settings == TopicSettings{});
}

TEST_CASE("retention: deleting a topic removes its data from the store") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  publish_n(*client, "doomed", 100);
  publish_n(*client, "kept", 10);
  client.reset();
  CHECK(broker.stop() == 0);
  uint64_t doomed_id = read_store(broker.data_dir(), "doomed").topic.id;

  broker.restart();
  client = Client::connect(broker.address());
  client->delete_topic("doomed");
  CHECK(client->topics("doomed").empty());
  client.reset();
  CHECK(broker.stop() == 0);

  std::unique_ptr<storage::Store> store;
  storage::Options options;
  options.path = broker.data_dir();
  REQUIRE(storage::Store::open(options, &store).is_ok());
  std::vector<storage::TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 1);
  CHECK(topics[0].name == "kept");
  std::vector<storage::StoredMessage> left;
  REQUIRE(store->read(doomed_id, 0, 1000, 1 << 30, &left).is_ok());
  CHECK(left.empty());
}

TEST_CASE("ttl: a topic can send expired messages to the dead letters") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  TopicSettings settings;
  settings.dead_letter_expired = true;
  client->create_topic("offers", settings);
  OutgoingMessage stale;
  stale.payload = "stale";
  stale.ttl = 100ms;
  OutgoingMessage fresh;
  fresh.payload = "fresh";
  client->publish_async("offers", {stale, fresh});
  client->flush();
  std::this_thread::sleep_for(300ms);

  SubscribeOptions options = durable("offers", "shop");
  auto sub = client->subscribe(options);
  auto got = receive(sub, 10, 500ms, 5s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "fresh");

  auto dead = read_topic(broker.address(), "offers.dlq");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].payload == "stale");
  std::string reason;
  for (const auto& h : dead[0].headers)
    if (h.name == "tern-dlq-reason") reason = h.value;
  CHECK(reason == "expired");
}

}  // namespace
}  // namespace tern::test
