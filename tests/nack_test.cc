// Nack, delayed redelivery, dead letters and max deliveries.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "broker_process.h"
#include "small_disk.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> headers_of(const Message& m) {
  std::map<std::string, std::string> out;
  for (const auto& h : m.headers) out[h.name] = h.value;
  return out;
}

TEST_CASE("nack: a nacked message comes back at once, attempt + 1") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("jobs", "j0");
  auto sub = client->subscribe(durable("jobs", "w"));
  auto first = sub.next(5s);
  REQUIRE(first);
  CHECK(first->attempt == 1);
  sub.nack(*first);
  auto again = sub.next(5s);
  REQUIRE(again);
  CHECK(again->offset == first->offset);
  CHECK(again->attempt == 2);
  sub.ack(*again);
  CHECK_FALSE(sub.next(300ms));
}

TEST_CASE("nack: with a delay it comes back no sooner") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("later", "x");
  client->publish("later", "y");
  auto sub = client->subscribe(durable("later", "w"));
  auto x = sub.next(5s);
  REQUIRE(x);
  auto nacked_at = Clock::now();
  sub.nack(*x, 400ms);
  // The other message is not held up by the delayed one.
  auto y = sub.next(5s);
  REQUIRE(y);
  CHECK(y->payload == "y");
  sub.ack(*y);
  auto back = sub.next(5s);
  REQUIRE(back);
  CHECK(back->payload == "x");
  CHECK(back->attempt == 2);
  CHECK(Clock::now() - nacked_at >= 350ms);
}

TEST_CASE("nack: a rejected message goes to the dead-letter topic") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("orders", "bad order", {{"trace", "t-1"}});
  client->publish("orders", "good order");
  auto dlq = client->subscribe(durable("orders.dlq", "ops"));
  auto sub = client->subscribe(durable("orders", "billing"));
  auto bad = sub.next(5s);
  REQUIRE(bad);
  sub.reject(*bad);
  auto good = sub.next(5s);
  REQUIRE(good);
  CHECK(good->payload == "good order");
  sub.ack(*good);
  CHECK_FALSE(sub.next(300ms));  // the rejected one is done

  auto dead = dlq.next(5s);
  REQUIRE(dead);
  CHECK(dead->payload == "bad order");
  auto h = headers_of(*dead);
  CHECK(h["trace"] == "t-1");
  CHECK(h["tern-dlq-topic"] == "orders");
  CHECK(h["tern-dlq-subscription"] == "billing");
  CHECK(h["tern-dlq-offset"] == std::to_string(bad->offset));
  CHECK(h["tern-dlq-attempts"] == "1");
  CHECK(h["tern-dlq-reason"] == "rejected");
}

TEST_CASE(
    "nack: a poison message is dead-lettered after max deliveries and does "
    "not block the others") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("tasks", "poison");
  for (int i = 0; i < 5; ++i) client->publish("tasks", "ok" + std::to_string(i));

  SubscribeOptions options = durable("tasks", "workers");
  options.max_deliveries = 3;
  options.dead_letter_topic = "tasks.failed";
  options.prefetch = 1;  // the poison message holds the only slot
  auto sub = client->subscribe(options);
  int poison_seen = 0;
  std::vector<std::string> done;
  auto deadline = Clock::now() + 10s;
  // The poison message waits out its backoff (100 ms, then 1 s) while the
  // others go through.
  while ((done.size() < 5 || poison_seen < 3) && Clock::now() < deadline) {
    auto m = sub.next(1s);
    if (!m) continue;
    if (m->payload == "poison") {
      ++poison_seen;
      sub.nack(*m);
    } else {
      done.push_back(m->payload);
      sub.ack(*m);
    }
  }
  CHECK(poison_seen == 3);
  CHECK(done.size() == 5);

  auto dlq = client->subscribe(durable("tasks.failed", "ops"));
  auto dead = dlq.next(5s);
  REQUIRE(dead);
  CHECK(dead->payload == "poison");
  CHECK(headers_of(*dead)["tern-dlq-attempts"] == "3");
  CHECK(headers_of(*dead)["tern-dlq-reason"] == "max deliveries reached");
}

TEST_CASE(
    "nack: a dead letter whose commit failed (disk full) is not lost: it "
    "goes once space returns") {
  SmallDisk disk;
  if (!disk.mounted()) {
    MESSAGE("cannot mount a tmpfs (not root?): skipped");
    return;
  }
  BrokerProcess broker(disk.broker_options());
  auto client = Client::connect(broker.address());
  client->publish("orders", "bad order");
  client->create_topic("orders.dlq", {});
  auto sub = client->subscribe(durable("orders", "billing"));
  auto bad = sub.next(5s);
  REQUIRE(bad);
  REQUIRE(disk.fill());
  sub.reject(*bad);  // its dead letter cannot be stored now
  client->ping();
  CHECK_FALSE(sub.next(1s));
  disk.empty();
  // Given up on again, and dead-lettered: once, not delivered again.
  auto dead = read_topic(broker.address(), "orders.dlq", 3s);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].payload == "bad order");
  CHECK(headers_of(dead[0])["tern-dlq-reason"] == "rejected");
  CHECK_FALSE(sub.next(500ms));
  broker.kill9();
  broker.restart();
  auto again = Client::connect(broker.address());
  auto resumed = again->subscribe(durable("orders", "billing"));
  CHECK_FALSE(resumed.next(1s));
  CHECK(read_topic(broker.address(), "orders.dlq").size() == 1);
}

TEST_CASE("nack: a subscription whose dead letters could not go is refused") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto refusal = [&](const std::string& topic, const std::string& dlq) {
    SubscribeOptions options = durable(topic, "s");
    options.dead_letter_topic = dlq;
    try {
      client->subscribe(options);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(refusal("loop", "loop").find("cannot be its own") != std::string::npos);
  // A name of 200 bytes leaves no room for the default "<topic>.dlq".
  std::string longest(200, 'x');
  CHECK(refusal(longest, "").find("no room for '.dlq'") != std::string::npos);
  CHECK(refusal(longest, "x.dlq") == "accepted");
  // An inbox ends with its requester: dead letters there would be stuck.
  CHECK(client->create_topic("_inbox.mine", {}, /*temporary=*/true));
  CHECK(refusal("jobs", "_inbox.mine").find("cannot be an inbox") !=
        std::string::npos);
  CHECK(refusal("jobs", "a..b").find("empty token") != std::string::npos);
  SubscribeOptions pattern;
  pattern.topic = "jobs.*";
  pattern.dead_letter_topic = "_inbox.mine";
  CHECK_THROWS_AS(client->subscribe(pattern), Error);
}

TEST_CASE(
    "nack: a message that cannot be dead-lettered is held back and shown, "
    "then goes") {
  BrokerOptions options;
  options.extra_args = {"--max-topics", "2"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  client->publish("jobs", "bad");
  client->publish("other", "x");  // the topic limit is reached: no jobs.dlq
  auto blocked = [&] {
    return client->topics("jobs").at(0).subscriptions.at(0);
  };
  {
    auto sub = client->subscribe(durable("jobs", "w"));
    auto bad = sub.next(5s);
    REQUIRE(bad);
    sub.reject(*bad);
    // Given up on: never delivered again, while it waits for its topic.
    CHECK_FALSE(sub.next(2500ms));
    CHECK(blocked().dead_letter_blocked == 1);
    CHECK(blocked().dead_letter_error.find("limit of 2 topics") !=
          std::string::npos);
  }
  // Said once in the log, not once a second.
  std::string log = broker.log();
  size_t said = 0;
  for (size_t at = 0;
       (at = log.find("cannot dead-letter", at)) != std::string::npos; ++at)
    ++said;
  CHECK(said == 1);

  // It stays given up on across a restart (a rejection is stored).
  client.reset();
  CHECK(broker.stop() == 0);
  broker.restart();
  client = Client::connect(broker.address());
  auto sub = client->subscribe(durable("jobs", "w"));
  CHECK_FALSE(sub.next(1500ms));
  CHECK(blocked().dead_letter_blocked == 1);

  // Room for the dead-letter topic: it goes there within a second or so.
  client->delete_topic("other");
  auto dead = read_topic(broker.address(), "jobs.dlq", 2500ms);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].payload == "bad");
  CHECK(headers_of(dead[0])["tern-dlq-reason"] == "rejected");
  CHECK(blocked().dead_letter_blocked == 0);
  CHECK_FALSE(sub.next(300ms));
}

TEST_CASE("nack: attempt counts and max deliveries survive a restart") {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    client->publish("flaky", "f");
    SubscribeOptions options = durable("flaky", "w");
    options.max_deliveries = 4;
    auto sub = client->subscribe(options);
    for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
      auto m = sub.next(5s);
      REQUIRE(m);
      CHECK(m->attempt == attempt);
      if (attempt < 3) sub.nack(*m);
    }
    // Attempt 3 is out and unacked; let its count reach the disk, then crash.
    client->publish("flaky", "barrier");  // a commit after the dispatch
  }
  broker.kill9();
  broker.restart();
  auto client = Client::connect(broker.address());
  SubscribeOptions options = durable("flaky", "w");
  options.max_deliveries = 4;
  auto sub = client->subscribe(options);
  auto m = sub.next(5s);
  REQUIRE(m);
  CHECK(m->payload == "f");
  CHECK(m->attempt == 4);
  sub.nack(*m);  // the 5th delivery would exceed max_deliveries
  auto barrier = sub.next(5s);
  REQUIRE(barrier);
  CHECK(barrier->payload == "barrier");
  sub.ack(*barrier);
  CHECK_FALSE(sub.next(300ms));
  auto dlq = client->subscribe(durable("flaky.dlq", "ops"));
  auto dead = dlq.next(5s);
  REQUIRE(dead);
  CHECK(headers_of(*dead)["tern-dlq-attempts"] == "4");
}

TEST_CASE("nack: a delayed redelivery survives a restart, still delayed") {
  BrokerProcess broker;
  Clock::time_point nacked_at;
  {
    auto client = Client::connect(broker.address());
    client->publish("later", "x");
    auto sub = client->subscribe(durable("later", "w"));
    auto m = sub.next(5s);
    REQUIRE(m);
    nacked_at = Clock::now();
    sub.nack(*m, 1500ms);
    CHECK(client->ping().count() >= 0);
  }
  CHECK(broker.stop() == 0);
  broker.restart();
  auto client = Client::connect(broker.address());
  auto sub = client->subscribe(durable("later", "w"));
  auto m = sub.next(5s);
  REQUIRE(m);
  CHECK(m->payload == "x");
  CHECK(m->attempt == 2);
  CHECK(Clock::now() - nacked_at >= 1400ms);  // not at once after restart
}

}  // namespace
}  // namespace tern::test

namespace tern::test {
namespace {

TEST_CASE("nack: a durable subscription's delivery settings survive a crash") {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    SubscribeOptions options;
    options.topic = "jobs";
    options.subscription = "workers";
    options.max_deliveries = 3;
    options.dead_letter_topic = "jobs.dead";
    client->subscribe(options).unsubscribe();
    // Confirmed once committed, so everything before it is committed too.
    client->publish("sync", "x");
  }
  broker.kill9();
  broker.restart();
  auto client = Client::connect(broker.address());
  auto topics = client->topics("jobs");
  REQUIRE(topics.size() == 1);
  REQUIRE(topics[0].subscriptions.size() == 1);
  CHECK(topics[0].subscriptions[0].max_deliveries == 3);
  CHECK(topics[0].subscriptions[0].dead_letter_topic == "jobs.dead");

  // Deleting the subscription deletes them too: a new one has the defaults.
  client->delete_subscription("jobs", "workers");
  SubscribeOptions fresh;
  fresh.topic = "jobs";
  fresh.subscription = "workers";
  client->subscribe(fresh).unsubscribe();
  client->publish("sync", "x");
  client.reset();
  broker.kill9();
  broker.restart();
  client = Client::connect(broker.address());
  auto after = client->topics("jobs");
  const auto& s = after.at(0).subscriptions.at(0);
  CHECK(s.max_deliveries == 16);
  CHECK(s.dead_letter_topic == "jobs.dlq");
}

}  // namespace
}  // namespace tern::test
