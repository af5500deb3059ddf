// De-duplication: a publish repeating a producer message id within the
// topic's window is not appended again, also across restarts and crashes.
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

OutgoingMessage with_id(const std::string& payload, const std::string& id) {
  OutgoingMessage m;
  m.payload = payload;
  m.id = id;
  return m;
}

// Publishes `messages` as one frame and returns their results.
std::vector<PublishResult> publish(
    Client& client, const std::string& topic,
    const std::vector<OutgoingMessage>& messages) {
  std::vector<PublishResult> results;
  client.publish_async(
      topic, messages,
      [&](const std::vector<PublishResult>& r) { results = r; });
  client.flush();
  return results;
}

std::vector<std::string> payloads(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.payload);
  return out;
}

TEST_CASE("dedupe: a repeated message id gets the original offset back") {
  BrokerProcess broker;
  auto client = Client::connect(broker.address());
  auto first = publish(*client, "orders", {with_id("a", "id-1")});
  REQUIRE(first.size() == 1);
  CHECK_FALSE(first[0].duplicate);

  // Again alone, again in a frame with a new id, and twice in one frame.
  auto again = publish(*client, "orders", {with_id("a-retry", "id-1")});
  REQUIRE(again.size() == 1);
  CHECK(again[0].duplicate);
  CHECK(again[0].offset == first[0].offset);
  auto mixed = publish(*client, "orders",
                       {with_id("b", "id-2"), with_id("a-again", "id-1"),
                        with_id("b-again", "id-2"), with_id("c", "")});
  REQUIRE(mixed.size() == 4);
  CHECK_FALSE(mixed[0].duplicate);
  CHECK(mixed[1].duplicate);
  CHECK(mixed[1].offset == first[0].offset);
  CHECK(mixed[2].duplicate);
  CHECK(mixed[2].offset == mixed[0].offset);
  CHECK_FALSE(mixed[3].duplicate);

  // The same id on another topic is another message.
  auto other = publish(*client, "invoices", {with_id("x", "id-1")});
  CHECK_FALSE(other[0].duplicate);

  CHECK(payloads(read_topic(broker.address(), "orders")) ==
        std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("dedupe: a duplicate of a message whose write failed fails too") {
  // Every commit fails: the free-space floor is above any real disk.
  BrokerOptions options;
  options.extra_args = {"--min-free", "1048576GiB"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());

  // Twice in one frame (one batch), then in two frames sent back to back
  // (the second may well be in the next batch): the repeats are not
  // "duplicates of" anything stored, so they fail like their original.
  std::vector<PublishResult> same_frame;
  client->publish_async("lost",
                        {with_id("a", "id-1"), with_id("a-again", "id-1")},
                        [&](const auto& r) { same_frame = r; });
  CHECK_THROWS_AS(client->flush(), Error);
  REQUIRE(same_frame.size() == 2);
  for (const auto& r : same_frame) {
    CHECK(r.error == ErrorCode::kStorageFailure);
    CHECK_FALSE(r.duplicate);
  }
  std::vector<PublishResult> first, second;
  client->publish_async("lost", {with_id("b", "id-2")},
                        [&](const auto& r) { first = r; });
  client->publish_async("lost", {with_id("b-again", "id-2")},
                        [&](const auto& r) { second = r; });
  CHECK_THROWS_AS(client->flush(), Error);
  REQUIRE(first.size() == 1);
  REQUIRE(second.size() == 1);
  CHECK(first[0].error == ErrorCode::kStorageFailure);
  CHECK(second[0].error == ErrorCode::kStorageFailure);
  CHECK_FALSE(second[0].duplicate);
}

TEST_CASE("dedupe: ids are remembered across a restart and a kill -9") {
  BrokerProcess broker;
  {
    auto client = Client::connect(broker.address());
    publish(*client, "ledger", {with_id("one", "L1")});
  }
  CHECK(broker.stop() == 0);
  broker.restart();
  {
    auto client = Client::connect(broker.address());
    auto retry = publish(*client, "ledger", {with_id("one-retry", "L1")});
    CHECK(retry[0].duplicate);
    CHECK(retry[0].offset == 0);
    publish(*client, "ledger", {with_id("two", "L2")});
  }
  broker.kill9();
  broker.restart();
  auto client = Client::connect(broker.address());
  auto retry = publish(*client, "ledger", {with_id("two-retry", "L2")});
  CHECK(retry[0].duplicate);
  CHECK(retry[0].offset == 1);
  CHECK(payloads(read_topic(broker.address(), "ledger")) ==
        std::vector<std::string>{"one", "two"});
}

TEST_CASE("dedupe: an id is forgotten once its window has passed") {
  BrokerOptions options;
  options.extra_args = {"--dedupe-window", "300"};
  BrokerProcess broker(options);
  auto client = Client::connect(broker.address());
  auto first = publish(*client, "events", {with_id("e", "E1")});
  CHECK(publish(*client, "events", {with_id("e", "E1")})[0].duplicate);
  std::this_thread::sleep_for(500ms);
  auto later = publish(*client, "events", {with_id("e-later", "E1")});
  CHECK_FALSE(later[0].duplicate);
  CHECK(later[0].offset == first[0].offset + 1);

  // Expired ids are also gone after a restart.
  std::this_thread::sleep_for(500ms);
  CHECK(broker.stop() == 0);
  broker.restart();
  auto client2 = Client::connect(broker.address());
  CHECK_FALSE(publish(*client2, "events", {with_id("e-3", "E1")})[0].duplicate);
}

}  // namespace
}  // namespace tern::test

namespace tern::test {
namespace {

TEST_CASE("dedupe: the number of remembered ids is bounded") {
  BrokerOptions options;
  options.extra_args = {"--max-dedupe-ids", "3", "--dedupe-window", "1000"};
  BrokerProcess broker(options);
  // Without reconnect the client gives no message an id of its own, so the
  // one without an id below really has none.
  ClientOptions no_reconnect;
  no_reconnect.reconnect = false;
  auto client = Client::connect(broker.address(), no_reconnect);
  std::vector<PublishResult> results;
  client->publish_async("orders",
                        {with_id("a", "1"), with_id("b", "2"),
                         with_id("c", "3"), with_id("d", "4"),
                         with_id("a again", "1"), with_id("no id", "")},
                        [&](const std::vector<PublishResult>& r) { results = r; });
  CHECK_THROWS_AS(client->flush(), Error);  // the refused one
  REQUIRE(results.size() == 6);
  CHECK(results[2].error == ErrorCode::kNone);
  // A fourth id would pass the limit: refused, and not stored.
  CHECK(results[3].error == ErrorCode::kLimitExceeded);
  // Ids already remembered still work, and messages without one are fine.
  CHECK(results[4].duplicate);
  CHECK(results[4].offset == 0);
  CHECK(results[5].error == ErrorCode::kNone);
  CHECK(payloads(read_topic(broker.address(), "orders")) ==
        std::vector<std::string>{"a", "b", "c", "no id"});

  // Once their window ends the ids are forgotten and make room again.
  std::this_thread::sleep_for(1200ms);
  auto later = publish(*client, "orders", {with_id("d", "4")});
  REQUIRE(later.size() == 1);
  CHECK(later[0].error == ErrorCode::kNone);
}

}  // namespace
}  // namespace tern::test
