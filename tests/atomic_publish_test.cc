// Atomic publish to several topics (Transaction frames, publish_atomic):
// one commit for all parts, any refusal refuses the whole request, and a
// kill -9 leaves every request wholly stored or wholly absent.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> payloads(const std::string& address,
                                  const std::string& topic) {
  std::vector<std::string> out;
  for (const Message& m : read_topic(address, topic)) out.push_back(m.payload);
  return out;
}

ErrorCode refusal(Client& client, const std::vector<TopicMessages>& parts,
                  std::string* message = nullptr) {
  try {
    client.publish_atomic(parts);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::kNone;
}

TEST_CASE("atomic publish: every part stored, results in order") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  client->publish("orders", "earlier");
  std::vector<PublishResult> results = client->publish_atomic(
      {{"orders", {{"o1", {}, {}, {}}, {"o2", {}, {}, {}}}},
       {"audit", {{"a1", {}, {}, {}}}}});
  REQUIRE(results.size() == 3);
  CHECK(results[0].offset == 1);
  CHECK(results[1].offset == 2);
  CHECK(results[2].offset == 0);
  CHECK(payloads(broker.address(), "orders") ==
        std::vector<std::string>{"earlier", "o1", "o2"});
  CHECK(payloads(broker.address(), "audit") == std::vector<std::string>{"a1"});

  // Ids are per topic, as for publish(): a repeat is all duplicates.
  OutgoingMessage paid{"paid", {}, {}, "pay-1"};
  OutgoingMessage shipped{"ship", {}, {}, "ship-1"};
  auto first = client->publish_atomic({{"pay", {paid}}, {"ship", {shipped}}});
  auto again = client->publish_atomic({{"pay", {paid}}, {"ship", {shipped}}});
  CHECK(again[0].duplicate);
  CHECK(again[1].duplicate);
  CHECK(again[0].offset == first[0].offset);
  CHECK(payloads(broker.address(), "pay").size() == 1);
  CHECK(client->publish_atomic({}).empty());
}

TEST_CASE(
    "atomic publish: any refusal refuses all, nothing stored or "
    "created") {
  BrokerOptions options;
  options.extra_args = {"--max-topics", "3"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  client->publish("kept", "x");
  std::string why;
  CHECK(refusal(
            *client,
            {{"kept", {{"y", {}, {}, {}}}}, {"bad topic", {{"z", {}, {}, {}}}}},
            &why) == ErrorCode::kInvalidTopic);
  CHECK(why.find("bad topic") != std::string::npos);
  CHECK(refusal(*client, {{"kept", {{"y", {}, {}, {}}}},
                          {"_inbox.gone", {{"z", {}, {}, {}}}}}) ==
        ErrorCode::kUnknownTopic);
  // Three topics allowed: "kept" and two new ones would be fine, three
  // new ones are not, and none of them is created.
  CHECK(refusal(*client, {{"n1", {{"1", {}, {}, {}}}},
                          {"n2", {{"2", {}, {}, {}}}},
                          {"n3", {{"3", {}, {}, {}}}}}) ==
        ErrorCode::kLimitExceeded);
  CHECK(client->topics().size() == 1);
  CHECK(payloads(broker.address(), "kept") == std::vector<std::string>{"x"});
  client->publish_atomic(
      {{"n1", {{"1", {}, {}, {}}}}, {"n2", {{"2", {}, {}, {}}}}});
  CHECK(client->topics().size() == 3);
}

TEST_CASE("atomic publish: a part without permission refuses the request") {
  std::string dir = make_temp_dir("tern-atomic");
  BrokerOptions options;
  options.extra_args = {"--config", users_file(dir, "alice", "s3cret",
                                               "publish.allow = [\"ok.>\"]")};
  BrokerProcess broker(options);
  ClientOptions alice;
  alice.user = "alice";
  alice.password = "s3cret";
  auto client = Client::connect(broker.address(), alice);
  std::string why;
  CHECK(refusal(
            *client,
            {{"ok.one", {{"1", {}, {}, {}}}}, {"secret", {{"2", {}, {}, {}}}}},
            &why) == ErrorCode::kNotAuthorized);
  CHECK(why.find("secret") != std::string::npos);
  CHECK(client->topics().empty());
  client->publish_atomic({{"ok.one", {{"1", {}, {}, {}}}}});
  remove_tree(dir);
}

TEST_CASE("atomic publish: after kill -9 every request is whole or absent") {
  BrokerProcess broker;
  std::mt19937 random(std::random_device{}());
  std::set<std::string> confirmed;
  for (int round = 0; round < 4; ++round) {
    ClientOptions once;
    once.reconnect = false;  // a lost connection ends the round
    auto client = Client::connect(broker.address(), once);
    std::atomic<bool> stop{false};
    std::thread producer([&] {
      try {
        for (int i = 0; !stop && i < 100000; ++i) {
          std::string id = std::to_string(round) + "-" + std::to_string(i);
          std::vector<OutgoingMessage> three(3,
                                             OutgoingMessage{id, {}, {}, {}});
          client->publish_atomic(
              {{"left", three},
               {"right", {{id, {}, {}, {}}}},
               {"audit." + std::to_string(i % 4), {{id, {}, {}, {}}}}});
          confirmed.insert(id);
        }
      } catch (const Error&) {
        // The broker was killed under it.
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(100, 400)(random)));
    broker.kill9();
    stop = true;
    producer.join();
    broker.restart();
  }
  // Each request is in all three topics or in none.
  std::multiset<std::string> left;
  for (const auto& p : payloads(broker.address(), "left")) left.insert(p);
  std::set<std::string> right, audit;
  for (const auto& p : payloads(broker.address(), "right")) right.insert(p);
  for (int t = 0; t < 4; ++t)
    for (const auto& p :
         payloads(broker.address(), "audit." + std::to_string(t)))
      audit.insert(p);
  MESSAGE(confirmed.size() << " requests confirmed, " << right.size()
                           << " stored");
  CHECK(confirmed.size() > 0);
  CHECK(right == audit);
  for (const std::string& id : right) CHECK(left.count(id) == 3);
  CHECK(left.size() == 3 * right.size());
  for (const std::string& id : confirmed) CHECK(right.count(id) == 1);
}

TEST_CASE("consume and publish: acks and outputs in one commit") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  for (const char* p : {"a", "b", "c"}) client->publish("in", p);
  Subscription sub = client->subscribe(durable("in", "proc"));
  std::vector<Message> got = receive(sub, 3, 2s, 10s, /*ack=*/false);
  REQUIRE(got.size() == 3);
  auto results = client->consume_and_publish(
      sub, {got[0], got[1]}, {{"out", {{"A", {}, {}, {}}, {"B", {}, {}, {}}}}});
  CHECK(results.size() == 2);
  CHECK(payloads(broker.address(), "out") ==
        std::vector<std::string>{"A", "B"});
  // Settled already: refused whole, nothing published.
  sub.ack(got[2]);
  CHECK(client->ping().count() >= 0);
  try {
    client->consume_and_publish(sub, {got[2]}, {{"out", {{"C", {}, {}, {}}}}});
    FAIL("an ack of a settled delivery was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kNotHeld);
  }
  CHECK(payloads(broker.address(), "out").size() == 2);
  for (const TopicInfo& t : client->topics("in"))
    for (const SubscriptionInfo& s : t.subscriptions)
      if (s.name == "proc") CHECK(s.lag == 0);
}

TEST_CASE(
    "consume and publish: a processor under kill -9 gives each input "
    "exactly one output") {
  BrokerProcess broker;
  const int kInputs = 300;
  {
    auto client = Client::connect(broker.address());
    std::vector<OutgoingMessage> inputs;
    for (int i = 0; i < kInputs; ++i)
      inputs.push_back({"in-" + std::to_string(i), {}, {}, {}});
    client->publish_async("A", inputs);
    client->flush();
  }
  std::mt19937 random(std::random_device{}());
  int kills = 0;
  for (int round = 0; round < 20; ++round) {
    ClientOptions once;
    once.reconnect = false;
    auto client = Client::connect(broker.address(), once);
    std::atomic<bool> idle{false};
    std::thread processor([&] {
      try {
        Subscription sub = client->subscribe(durable("A", "proc"));
        while (auto m = sub.next(1s))
          client->consume_and_publish(
              sub, {*m}, {{"B", {{"out-" + m->payload, {}, {}, {}}}}});
        idle = true;  // nothing more came
      } catch (const Error&) {
        // The broker was killed under it.
      }
    });
    bool kill = round < 4;
    if (kill) {
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::uniform_int_distribution<int>(100, 400)(random)));
      broker.kill9();
      ++kills;
    }
    processor.join();
    if (kill) broker.restart();
    if (idle) break;
  }
  std::vector<std::string> outputs = payloads(broker.address(), "B");
  std::multiset<std::string> counted(outputs.begin(), outputs.end());
  MESSAGE(kills << " kills, " << outputs.size() << " outputs");
  CHECK(outputs.size() == size_t(kInputs));
  for (int i = 0; i < kInputs; ++i)
    CHECK(counted.count("out-in-" + std::to_string(i)) == 1);
  auto client = Client::connect(broker.address());
  for (const TopicInfo& t : client->topics("A"))
    for (const SubscriptionInfo& s : t.subscriptions)
      if (s.name == "proc") CHECK(s.lag == 0);
}

}  // namespace
}  // namespace tern::test
