// Wildcard consumers: one ephemeral consumer on every topic a pattern
// matches, topics created later included.
#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

std::set<std::string> topics_of(const std::vector<Message>& messages) {
  std::set<std::string> topics;
  for (const auto& m : messages) topics.insert(m.topic);
  return topics;
}

TEST_CASE("wildcard: '*' matches one token, on old and new topics") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("orders.eu", "before");  // exists before the subscribe
  SubscribeOptions options;
  options.topic = "orders.*";
  options.ack_timeout = 300ms;
  auto sub = client->subscribe(options);

  for (const char* topic :
       {"orders.eu", "orders.us", "orders.eu.paris", "orders", "audit"})
    client->publish(topic, std::string("to ") + topic);
  auto got = receive(sub, 10, 500ms, 5s);  // acked as received
  REQUIRE(got.size() == 2);
  CHECK(topics_of(got) == std::set<std::string>{"orders.eu", "orders.us"});
  for (const auto& m : got) CHECK(m.payload == "to " + m.topic);
  // Each was acked on its own topic: nothing comes back after the timeout.
  CHECK_FALSE(sub.next(700ms));
}

TEST_CASE("wildcard: '>' matches the rest; unacked messages come back") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  SubscribeOptions options;
  options.topic = "orders.>";
  options.ack_timeout = 300ms;
  auto sub = client->subscribe(options);
  client->publish("orders.eu", "a");
  client->publish("orders.eu.paris", "b");
  client->publish("orders", "not matched");

  auto first = receive(sub, 2, 500ms, 5s, /*ack=*/false);
  REQUIRE(first.size() == 2);
  CHECK(topics_of(first) ==
        std::set<std::string>{"orders.eu", "orders.eu.paris"});
  // Both offsets are 0: only the topic tells them apart. Ack one.
  sub.ack(first[0]);
  auto again = sub.next(3s);
  REQUIRE(again);
  CHECK(again->topic == first[1].topic);
  CHECK(again->attempt == 2);
  sub.ack(*again);
  CHECK_FALSE(sub.next(700ms));
}

TEST_CASE("wildcard: bad patterns and named wildcards are refused") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto refused = [&](const std::string& topic, const std::string& name) {
    SubscribeOptions options;
    options.topic = topic;
    options.subscription = name;
    try {
      client->subscribe(options);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kNone;
  };
  CHECK(refused("orders.*x", "") == ErrorCode::kInvalidTopic);
  CHECK(refused("orders.>.eu", "") == ErrorCode::kInvalidTopic);
  CHECK(refused("orders..*", "") == ErrorCode::kInvalidTopic);
  CHECK(refused("orders.*", "billing") == ErrorCode::kInvalidSubscription);
  SubscribeOptions own_dlq;
  own_dlq.topic = "orders.*";
  own_dlq.dead_letter_topic = "orders.dlq";  // orders.* matches it
  CHECK_THROWS_AS(client->subscribe(own_dlq), Error);
  CHECK(client->topics().empty());  // nothing was created
  client->publish("orders.eu", "still serving");
}

TEST_CASE("wildcard: a consumer that cannot follow a new topic is closed") {
  BrokerOptions options;
  options.extra_args = {"--max-subscriptions", "2"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  SubscribeOptions pattern;
  pattern.topic = "m.*";
  auto sub = client->subscribe(pattern);
  client->publish("m.a", "a");
  client->publish("m.b", "b");
  CHECK(receive(sub, 2, 500ms, 5s).size() == 2);
  // A third part would pass the subscription limit: rather than missing
  // m.c without a word, the consumer is told and ends.
  client->publish("m.c", "c");
  ErrorCode code = ErrorCode::kNone;
  std::string why;
  try {
    while (sub.next(5s)) {
    }
  } catch (const Error& e) {
    code = e.code();
    why = e.what();
  }
  CHECK(code == ErrorCode::kLimitExceeded);
  CHECK(why.find("cannot follow topic m.c") != std::string::npos);
  CHECK(broker.log().find("wildcard consumer 1 closed") != std::string::npos);
  // Its parts are gone too: the limit has room again.
  SubscribeOptions plain = durable("m.c", "after");
  CHECK_NOTHROW(client->subscribe(plain));
}

TEST_CASE("wildcard: topic names are tokens, so a pattern can match each") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  for (std::string bad : {".", "..", "a..b", ".a", "a.", "a b", ""}) {
    CAPTURE(bad);
    ErrorCode code = ErrorCode::kNone;
    std::string why;
    try {
      client->publish(bad, "x");
    } catch (const Error& e) {
      code = e.code();
      why = e.what();
    }
    CHECK(code == ErrorCode::kInvalidTopic);
    CHECK(why.find("topic name") != std::string::npos);
  }
  CHECK(client->topics().empty());
  client->publish("a.b-c.d_e", "fine");
  CHECK(client->topics().size() == 1);
}

TEST_CASE("wildcard: a deleted topic leaves the others; inboxes never match") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("jobs.a", "1");
  client->publish("jobs.b", "1");
  SubscribeOptions options;
  options.topic = "jobs.*";
  options.start = StartPosition::kEarliest;
  auto sub = client->subscribe(options);
  CHECK(receive(sub, 10, 500ms, 5s).size() == 2);

  client->delete_topic("jobs.a");
  client->create_topic("_inbox.jobs", {}, /*temporary=*/true);
  SubscribeOptions inbox;
  inbox.topic = "_inbox.*";
  auto inbox_sub = client->subscribe(inbox);
  client->publish("_inbox.jobs", "private");
  CHECK_FALSE(inbox_sub.next(500ms));

  client->publish("jobs.b", "2");
  client->publish("jobs.a", "again");  // a new topic of the old name
  auto got = receive(sub, 10, 500ms, 5s);
  CHECK(topics_of(got) == std::set<std::string>{"jobs.a", "jobs.b"});
  CHECK(got.size() == 2);
}

}  // namespace
}  // namespace tern::test
