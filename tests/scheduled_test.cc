// Scheduled messages: stored and confirmed at once, appended to their topic
// (and so delivered) not before their time, across a crash too; the topic's
// other messages do not wait for them.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "small_disk.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

OutgoingMessage later(std::string payload, milliseconds delay) {
  OutgoingMessage m;
  m.payload = std::move(payload);
  m.delay = delay;
  return m;
}

uint64_t scheduled_in(Client& client, const std::string& topic) {
  for (const TopicInfo& t : client.topics(topic))
    if (t.name == topic) return t.scheduled;
  FAIL("no topic " << topic);
  return 0;
}

TEST_CASE("scheduled: delivered from its time on, the others not held up") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto sub = client->subscribe(durable("jobs", "w"));
  int64_t published = wall_ms();
  PublishResult r = client->publish("jobs", later("later", 700ms));
  CHECK(r.scheduled);
  CHECK(r.offset == 0);
  CHECK(r.error == ErrorCode::kNone);
  uint64_t now_offset = client->publish("jobs", "now");
  CHECK(scheduled_in(*client, "jobs") == 1);

  auto first = sub.next(5s);
  REQUIRE(first);
  CHECK(first->payload == "now");
  CHECK(wall_ms() - published < 500);  // not behind the scheduled one
  sub.ack(*first);
  auto second = sub.next(5s);
  REQUIRE(second);
  int64_t arrived = wall_ms();
  CHECK(second->payload == "later");
  MESSAGE("due after 700 ms, delivered after " << arrived - published << " ms");
  CHECK(arrived - published >= 700);
  CHECK(arrived - published < 700 + 500);
  // Appended when due: after the message published later, stamped then.
  CHECK(second->offset > now_offset);
  CHECK(second->timestamp_ms >= published + 700);
  sub.ack(*second);
  CHECK(scheduled_in(*client, "jobs") == 0);
}

TEST_CASE("scheduled: kept across a kill -9, each delivered at its time") {
  BrokerProcess broker;
  int64_t start = wall_ms();
  {
    auto client = Client::connect(broker.address());
    client->publish("t", later("soon", 200ms));  // due while the broker is down
    client->publish("t", later("b", 2500ms));
    OutgoingMessage at;
    at.payload = "a";
    at.deliver_at_ms = start + 1800;
    client->publish("t", at);
  }
  broker.kill9();
  std::this_thread::sleep_for(400ms);
  broker.restart();
  auto client = Client::connect(broker.address());
  CHECK(scheduled_in(*client, "t") >= 2);  // "soon" may be appended already
  auto sub = client->subscribe(durable("t", "w"));
  std::vector<std::pair<std::string, int64_t>> got;
  for (int i = 0; i < 3; ++i) {
    auto m = sub.next(5s);
    REQUIRE(m);
    got.push_back({m->payload, wall_ms() - start});
    sub.ack(*m);
  }
  MESSAGE("delivered " << got[0].first << " at " << got[0].second << " ms, "
                       << got[1].first << " at " << got[1].second << " ms, "
                       << got[2].first << " at " << got[2].second << " ms");
  CHECK(got[0].first == "soon");
  CHECK(got[1].first == "a");
  CHECK(got[1].second >= 1800);
  CHECK(got[2].first == "b");
  CHECK(got[2].second >= 2500);
  CHECK(got[2].second < 2500 + 1000);
  CHECK(!sub.next(300ms));
  CHECK(scheduled_in(*client, "t") == 0);
}

TEST_CASE("scheduled: many at once, moved in several batches, none twice") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  constexpr int kCount = 2000;
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < kCount; ++i)
    batch.push_back(later("s" + std::to_string(i), 800ms));
  int64_t published = wall_ms();
  std::vector<PublishResult> results;
  client->publish_async("bulk", batch, [&](const auto& r) { results = r; });
  client->publish("bulk", "plain");
  client->flush();
  REQUIRE(results.size() == size_t(kCount));
  for (const PublishResult& r : results) CHECK(r.scheduled);

  auto sub = client->subscribe(durable("bulk", "w"));
  auto got = receive(sub, kCount + 1, 2s, 20s);
  REQUIRE(got.size() == size_t(kCount + 1));
  CHECK(got[0].payload == "plain");
  for (int i = 0; i < kCount; ++i) {
    // In the order they were scheduled (same due time: ticket order).
    CHECK(got[1 + i].payload == "s" + std::to_string(i));
    CHECK(got[1 + i].timestamp_ms >= published + 800);
  }
  CHECK(scheduled_in(*client, "bulk") == 0);
}

TEST_CASE(
    "scheduled: ids de-duplicate, TTL counts from the append, too far is "
    "refused, atomic publishes schedule too, a deleted topic's go with it") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  OutgoingMessage once = later("once", 400ms);
  once.id = "order-1-timeout";
  once.ttl = 300ms;  // shorter than the delay: counted from the append
  CHECK(client->publish("ids", once).scheduled);
  PublishResult again = client->publish("ids", once);
  CHECK(again.duplicate);
  CHECK(again.scheduled);

  OutgoingMessage far = later("far", std::chrono::hours(24 * 367));
  CHECK_THROWS_AS(client->publish("ids", far), Error);
  CHECK(scheduled_in(*client, "ids") == 1);

  auto results =
      client->publish_atomic({{"ids", {later("in a transaction", 300ms)}},
                              {"other", {later("now", 0ms)}}});
  REQUIRE(results.size() == 2);
  CHECK(results[0].scheduled);
  CHECK(!results[1].scheduled);
  CHECK(scheduled_in(*client, "ids") == 2);
  // All or nothing: one message too far refuses the whole transaction.
  CHECK_THROWS_AS(
      client->publish_atomic({{"ids", {later("x", 1s)}}, {"other", {far}}}),
      Error);
  CHECK(scheduled_in(*client, "ids") == 2);

  auto sub = client->subscribe(durable("ids", "w"));
  auto got = receive(sub, 10, 1s, 5s);
  REQUIRE(got.size() == 2);
  CHECK(got[0].payload == "in a transaction");
  CHECK(got[1].payload == "once");

  client->publish("gone", later("never", 500ms));
  client->delete_topic("gone");
  auto fresh = client->subscribe(durable("gone", "w"));
  CHECK(!fresh.next(1s));
  CHECK(scheduled_in(*client, "gone") == 0);
}

TEST_CASE(
    "scheduled: due while the disk is full, appended once space returns, "
    "exactly once") {
  SmallDisk disk;
  if (!disk.mounted()) {
    MESSAGE("cannot mount a tmpfs (not root?): skipped");
    return;
  }
  BrokerProcess broker(disk.broker_options());
  auto client = Client::connect(broker.address());
  auto sub = client->subscribe(durable("full", "w"));
  // More than one move takes, so that more is due after a failed one.
  constexpr size_t kCount = 600;
  std::vector<OutgoingMessage> batch;
  for (size_t i = 0; i < kCount; ++i)
    batch.push_back(later("due in a full disk", 500ms));
  client->publish_async("full", batch);
  client->flush();
  REQUIRE(disk.fill());
  // Due, but its move cannot be committed: it stays scheduled, and
  // nothing half-moved is delivered.
  CHECK(!sub.next(2500ms));
  CHECK(scheduled_in(*client, "full") == kCount);
  disk.empty();
  auto got = receive(sub, kCount + 1, 2s, 20s);
  CHECK(got.size() == kCount);
  CHECK(scheduled_in(*client, "full") == 0);
  // A failed move is tried again a second later, not at once: a store
  // that refuses writes is not hammered.
  std::string log = broker.log();
  size_t at = log.find("commits work again (");
  REQUIRE(at != std::string::npos);
  unsigned long failed = std::stoul(log.substr(at + 20));
  // Failed metadata writes are retried on ticks too, at most 20 a second:
  // 26 failures in all here, where moves retried at once made 124.
  MESSAGE(failed << " commits failed while the disk was full");
  CHECK(failed <= 75);
  broker.kill9();
  broker.restart();
  auto again = Client::connect(broker.address());
  CHECK(scheduled_in(*again, "full") == 0);
  auto resumed = again->subscribe(durable("full", "w"));
  CHECK(!resumed.next(1s));
}

}  // namespace
}  // namespace tern::test
