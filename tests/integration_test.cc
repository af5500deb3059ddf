// Integration tests: the real tern-broker process driven through the real
// tern::Client. Each test starts its own broker on a fresh data directory and
// a free loopback port (see broker_process.h).
#include <dirent.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "broker_process.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

// Publishes `count` messages "<prefix><i>" with confirms and returns
// offset -> payload.
std::map<uint64_t, std::string> publish_confirmed(Client& client,
                                                  const std::string& topic,
                                                  int count,
                                                  const std::string& prefix) {
  std::map<uint64_t, std::string> published;
  for (int i = 0; i < count; ++i) {
    std::string payload = prefix + std::to_string(i);
    published[client.publish(topic, payload)] = payload;
  }
  return published;
}

// "0,1,2": readable when a check fails.
std::string offsets_of(const std::vector<Message>& messages) {
  std::string offsets;
  for (const auto& m : messages) {
    if (!offsets.empty()) offsets += ',';
    offsets += std::to_string(m.offset);
  }
  return offsets;
}

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(uint8_t(c)));
  return text;
}

std::set<std::string> list_dir(const std::string& path) {
  std::set<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(dir);
  return names;
}

}  // namespace

TEST_CASE(
    "integration: confirmed publishes are delivered in order to a durable "
    "subscription") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());

  // Half one at a time, half pipelined in batches of varying size.
  std::map<uint64_t, std::string> published =
      publish_confirmed(*client, "orders", 200, "sync-");
  std::mutex mu;
  int confirmed_async = 0;
  bool async_error = false;
  int sent = 0;
  for (int batch = 0; sent < 1800; ++batch) {
    std::vector<OutgoingMessage> messages;
    int size = std::min(1 + batch % 37, 1800 - sent);
    std::vector<std::string> payloads;
    for (int i = 0; i < size; ++i) {
      OutgoingMessage m;
      m.payload = "async-" + std::to_string(sent + i);
      payloads.push_back(m.payload);
      messages.push_back(std::move(m));
    }
    sent += size;
    client->publish_async(
        "orders", messages,
        [&, payloads](const std::vector<PublishResult>& results) {
          std::lock_guard<std::mutex> lock(mu);
          if (results.size() != payloads.size()) async_error = true;
          for (size_t i = 0; i < results.size() && i < payloads.size(); ++i) {
            if (results[i].error != ErrorCode::kNone) {
              async_error = true;
              continue;
            }
            if (!published.emplace(results[i].offset, payloads[i]).second) {
              async_error = true;  // an offset handed out twice
            }
            ++confirmed_async;
          }
        });
  }
  client->flush();
  CHECK(client->unconfirmed() == 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    CHECK_FALSE(async_error);
    CHECK(confirmed_async == 1800);
    REQUIRE(published.size() == 2000);
  }
  // A fresh topic starts at offset 0.
  CHECK(published.begin()->first == 0);

  auto sub = client->subscribe(durable("orders", "billing"));
  auto got = receive(sub, 2000, 3s);
  REQUIRE(got.size() == 2000);
  auto expected = published.begin();
  for (size_t i = 0; i < got.size(); ++i, ++expected) {
    if (i > 0) REQUIRE(got[i].offset > got[i - 1].offset);
    CHECK(got[i].offset == expected->first);
    CHECK(got[i].payload == expected->second);
    CHECK(got[i].attempt == 1);
    CHECK(got[i].topic == "orders");
    CHECK(got[i].subscription == "billing");
  }
  // Everything was acked: nothing comes back.
  CHECK_FALSE(sub.next(300ms).has_value());
}

TEST_CASE("integration: every subscription of a topic gets every message") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto published = publish_confirmed(*client, "events", 200, "e");

  auto a = client->subscribe(durable("events", "audit"));
  auto b = client->subscribe(durable("events", "search"));
  auto got_a = receive(a, 200, 3s);
  auto got_b = receive(b, 200, 3s);
  REQUIRE(got_a.size() == 200);
  REQUIRE(got_b.size() == 200);
  auto expected = published.begin();
  for (size_t i = 0; i < 200; ++i, ++expected) {
    CHECK(got_a[i].offset == expected->first);
    CHECK(got_a[i].payload == expected->second);
    CHECK(got_b[i].offset == expected->first);
    CHECK(got_b[i].payload == expected->second);
  }
}

TEST_CASE("integration: consumers of one subscription share its messages") {
  BrokerProcess broker;
  auto producer = Client::connect(broker.address());
  auto client_a = Client::connect(broker.address());
  auto client_b = Client::connect(broker.address());
  auto a = client_a->subscribe(durable("jobs", "workers", 10));
  auto b = client_b->subscribe(durable("jobs", "workers", 10));

  constexpr int kCount = 500;
  auto published = publish_confirmed(*producer, "jobs", kCount, "job-");

  // Both consumers take turns; each acks what it gets, so with a prefetch of
  // 10 neither can hog the subscription.
  std::map<uint64_t, std::string> seen;
  int duplicates = 0, redeliveries = 0, from_a = 0, from_b = 0;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  int idle_rounds = 0;
  while (seen.size() < kCount && idle_rounds < 50 &&
         std::chrono::steady_clock::now() < deadline) {
    bool any = false;
    for (Subscription* sub : {&a, &b}) {
      for (int i = 0; i < 10; ++i) {
        auto m = sub->next(20ms);
        if (!m) break;
        any = true;
        sub->ack(*m);
        (sub == &a ? from_a : from_b)++;
        if (m->attempt != 1) ++redeliveries;
        if (!seen.emplace(m->offset, m->payload).second) ++duplicates;
      }
    }
    idle_rounds = any ? 0 : idle_rounds + 1;
  }
  CHECK(seen == published);
  CHECK(duplicates == 0);
  CHECK(redeliveries == 0);
  CHECK(from_a > 0);
  CHECK(from_b > 0);
  CHECK(from_a + from_b == kCount);
}

TEST_CASE(
    "integration: prefetch bounds the unacked messages out to a consumer") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto published = publish_confirmed(*client, "prefetch", 20, "p");
  auto sub = client->subscribe(durable("prefetch", "slow", 5));

  auto first = receive(sub, 100, 300ms, 5s, /*ack=*/false);
  REQUIRE(first.size() == 5);
  CHECK(offsets_of(first) == "0,1,2,3,4");

  // Acking makes room for exactly as many more.
  sub.ack_range(first.front().offset, first.back().offset);
  auto second = receive(sub, 100, 300ms, 5s, /*ack=*/false);
  REQUIRE(second.size() == 5);
  CHECK(offsets_of(second) == "5,6,7,8,9");

  // Out-of-order single acks count too.
  sub.ack(second[3]);
  sub.ack(second[1]);
  auto third = receive(sub, 100, 300ms, 5s, /*ack=*/false);
  CHECK(offsets_of(third) == "10,11");
}

TEST_CASE(
    "integration: unacked messages are redelivered when the consumer "
    "disconnects") {
  BrokerProcess broker;
  auto producer = Client::connect(broker.address());
  auto published = publish_confirmed(*producer, "tasks", 10, "t");

  auto client_a = Client::connect(broker.address());
  auto sub_a = client_a->subscribe(durable("tasks", "workers", 100));
  auto got_a = receive(sub_a, 10, 2s, 5s, /*ack=*/false);
  REQUIRE(got_a.size() == 10);
  for (const auto& m : got_a) CHECK(m.attempt == 1);
  client_a->close();  // gone without acking

  auto client_b = Client::connect(broker.address());
  auto sub_b = client_b->subscribe(durable("tasks", "workers", 100));
  auto got_b = receive(sub_b, 10, 5s, 10s);
  REQUIRE(got_b.size() == 10);
  auto expected = published.begin();
  for (size_t i = 0; i < got_b.size(); ++i, ++expected) {
    CHECK(got_b[i].offset == expected->first);
    CHECK(got_b[i].payload == expected->second);
    CHECK(got_b[i].attempt == 2);
  }
  CHECK_FALSE(sub_b.next(300ms).has_value());
}

TEST_CASE(
    "integration: an ack range settles only the acking consumer's messages") {
  BrokerProcess broker;
  auto producer = Client::connect(broker.address());
  publish_confirmed(*producer, "jobs", 10, "j");

  // A takes 5 and holds them; B takes the other 5.
  auto client_a = Client::connect(broker.address());
  auto sub_a = client_a->subscribe(durable("jobs", "crew", 5));
  auto held_by_a = receive(sub_a, 5, 2s, 5s, /*ack=*/false);
  REQUIRE(held_by_a.size() == 5);
  auto client_b = Client::connect(broker.address());
  auto sub_b = client_b->subscribe(durable("jobs", "crew", 5));
  auto held_by_b = receive(sub_b, 5, 2s, 5s, /*ack=*/false);
  REQUIRE(held_by_b.size() == 5);

  // B acks a range covering every offset, then leaves. A's messages must not
  // count as done: they come back to B's successor when A leaves too.
  sub_b.ack_range(0, 1000);
  CHECK(client_b->ping().count() >= 0);  // the ack has been processed
  client_b->close();
  client_a->close();

  auto client_c = Client::connect(broker.address());
  auto sub_c = client_c->subscribe(durable("jobs", "crew", 100));
  auto again = receive(sub_c, 10, 1s, 5s);
  CHECK(offsets_of(again) == offsets_of(held_by_a));
  for (const auto& m : again) CHECK(m.attempt == 2);
}

TEST_CASE(
    "integration: unacked messages are redelivered after the ack timeout") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto published = publish_confirmed(*client, "slow", 5, "s");

  auto options = durable("slow", "forgetful", 100);
  options.ack_timeout = 300ms;
  auto sub = client->subscribe(options);
  auto start = std::chrono::steady_clock::now();
  auto first = receive(sub, 5, 2s, 5s, /*ack=*/false);
  REQUIRE(first.size() == 5);
  for (const auto& m : first) CHECK(m.attempt == 1);

  // Not acked: the same consumer sees them again, no earlier than the timeout.
  auto again = receive(sub, 5, 3s, 5s, /*ack=*/false);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE(again.size() == 5);
  CHECK(elapsed >= 250ms);
  auto expected = published.begin();
  for (size_t i = 0; i < again.size(); ++i, ++expected) {
    CHECK(again[i].offset == expected->first);
    CHECK(again[i].payload == expected->second);
    CHECK(again[i].attempt >= 2);
  }
}

TEST_CASE(
    "integration: a durable subscription resumes after a broker restart") {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    auto published = publish_confirmed(*client, "ledger", 10, "l");
    REQUIRE(published.begin()->first == 0);
    auto sub = client->subscribe(durable("ledger", "books", 100));
    auto got = receive(sub, 10, 2s, 5s, /*ack=*/false);
    REQUIRE(got.size() == 10);
    sub.ack_range(got[0].offset, got[4].offset);
    client->ping();  // the acks are processed before the Pong is sent
    client->close();
  }
  CHECK(broker.stop() == 0);
  broker.restart();

  auto client = Client::connect(broker.address());
  auto sub = client->subscribe(durable("ledger", "books", 100));
  auto resumed = receive(sub, 100, 1s, 5s);
  CHECK(offsets_of(resumed) == "5,6,7,8,9");
  for (const auto& m : resumed)
    CHECK(m.payload == "l" + std::to_string(m.offset));

  auto fresh = publish_confirmed(*client, "ledger", 3, "new-");
  auto after = receive(sub, 100, 1s, 5s);
  CHECK(offsets_of(after) == "10,11,12");
  for (const auto& m : after) CHECK(m.payload == fresh.at(m.offset));
}

TEST_CASE("integration: an ephemeral subscription starts at the tail") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  publish_confirmed(*client, "news", 5, "old-");

  SubscribeOptions options;
  options.topic = "news";  // no name, default start: plain pub/sub
  auto sub = client->subscribe(options);
  auto fresh = publish_confirmed(*client, "news", 5, "new-");

  auto got = receive(sub, 100, 500ms, 5s);
  REQUIRE(got.size() == 5);
  auto expected = fresh.begin();
  for (size_t i = 0; i < got.size(); ++i, ++expected) {
    CHECK(got[i].offset == expected->first);
    CHECK(got[i].payload == expected->second);
    CHECK(got[i].subscription.empty());
  }
}

TEST_CASE(
    "integration: an invalid topic is a request error, not a dead connection") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  for (std::string topic : {std::string("has space"), std::string("slash/no"),
                            std::string(201, 'x'), std::string()}) {
    CAPTURE(topic);
    try {
      client->publish(topic, "payload");
      FAIL("publish to an invalid topic succeeded");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInvalidTopic);
    }
    CHECK(client->connected());
    client->ping();
  }
  // The longest valid name and every allowed character still work.
  std::string longest(200, 'a');
  CHECK(client->publish(longest, "ok") == 0);
  CHECK(client->publish("Az09._-", "ok") == 0);
}

TEST_CASE("integration: SIGTERM exits 0 and a locked data dir is refused") {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    client->publish("t", "x");
  }
  auto second = run_program(
      {broker_binary(), "--listen", "127.0.0.1:" + std::to_string(free_port()),
       "--data", broker.data_dir(), "--fsync", "always"},
      "", 5s);
  CHECK_FALSE(second.timed_out);
  CHECK(second.exit_code != 0);
  std::string err = lower(second.err);
  INFO("second broker stderr: " << second.err);
  CHECK((err.find("lock") != std::string::npos ||
         err.find("in use") != std::string::npos));

  // The first broker is unaffected by the attempt.
  {
    auto client = Client::connect(broker.address());
    CHECK(client->publish("t", "y") == 1);
  }
  int code = broker.stop();
  INFO("broker stderr: " << broker.log());
  CHECK(code == 0);
}

TEST_CASE(
    "integration: a directory that is not a Tern store is refused and left "
    "alone") {
  std::string dir = make_temp_dir("tern-foreign");
  {
    std::ofstream(dir + "/notes.txt") << "precious";
    std::ofstream(dir + "/CURRENT") << "not rocksdb";
  }
  auto before = list_dir(dir);
  auto result = run_program(
      {broker_binary(), "--listen", "127.0.0.1:" + std::to_string(free_port()),
       "--data", dir, "--fsync", "always"},
      "", 5s);
  INFO("broker stderr: " << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code != 0);
  CHECK_FALSE(result.err.empty());
  CHECK(list_dir(dir) == before);
  CHECK(read_file(dir + "/notes.txt") == "precious");
  CHECK(read_file(dir + "/CURRENT") == "not rocksdb");
  remove_tree(dir);
}

}  // namespace tern::test
