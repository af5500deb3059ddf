// The client's coalescing (client/connection.h, "Coalescing"): publishes made
// while the publisher streams, 16 or more unanswered, wait for answers and
// leave together; lone and paced ones go at once; acks made while more
// deliveries are queued merge into ranges and leave with the next frame, before
// next() waits, or within the keeper's bound. Against FakeBroker, which sees
// exactly which frames arrive when.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "fake_broker.h"
#include "frame.h"
#include "tern/client.h"
#include "under_tsan.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The next frame that is not a heartbeat's Ping.
const wire::Frame* next_frame(FakeBroker& broker,
                              std::chrono::milliseconds timeout) {
  for (;;) {
    const wire::Frame* f = broker.next(timeout);
    if (f == nullptr || f->body_type() != wire::Body::Ping) return f;
  }
}

// The next frame that is not a Ping, which must come within `timeout` and be
// of type `type`.
const wire::Frame& expect(FakeBroker& broker, wire::Body type,
                          std::chrono::milliseconds timeout = 2000ms) {
  const wire::Frame* f = next_frame(broker, timeout);
  REQUIRE(f != nullptr);
  REQUIRE(f->body_type() == type);
  return *f;
}

// Connects a client to `broker`, which answers its Hello.
std::unique_ptr<Client> connect(FakeBroker& broker) {
  auto client = std::async(std::launch::async,
                           [&] { return Client::connect(broker.address()); });
  REQUIRE(broker.accept_and_hello(5s));
  return client.get();
}

// Subscribes to "t" and has the broker answer with consumer id 7.
Subscription subscribe(Client& client, FakeBroker& broker) {
  SubscribeOptions options;
  options.topic = "t";
  auto sub =
      std::async(std::launch::async, [&] { return client.subscribe(options); });
  const wire::Frame& f = expect(broker, wire::Body::Subscribe, 5000ms);
  broker.subscribe_ok(f.body_as_Subscribe()->request_id(), 7);
  return sub.get();
}

std::vector<OutgoingMessage> one(const std::string& payload) {
  OutgoingMessage m;
  m.payload = payload;
  return {m};
}

// Offsets an Ack frame covers, as [first, last] pairs.
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
Ranges ranges(const wire::Frame& f) {
  Ranges out;
  for (const wire::OffsetRange* r : *f.body_as_Ack()->ranges())
    out.emplace_back(r->first(), r->last());
  return out;
}

}  // namespace

TEST_CASE(
    "coalescing: a streaming publisher's frames wait behind 16 unanswered "
    "and then leave together, in order") {
  FakeBroker broker;
  auto client = connect(broker);
  std::atomic<int> confirmed{0};
  auto count = [&](const std::vector<PublishResult>&) { ++confirmed; };

  client->publish_async("t", one("0"), count);
  uint64_t first_id = expect(broker, wire::Body::Publish, 5000ms)
                          .body_as_Publish()
                          ->request_id();

  // Publishes are held only behind 16 unanswered: frames 1 to 15 go at
  // once, and from then on, the publisher streaming, the rest are held.
  const int kMore = 99;
  for (int i = 1; i <= kMore; ++i)
    client->publish_async("t", one(std::to_string(i)), count);
  int before_answer = 0;
  std::vector<std::string> payloads;
  std::vector<uint64_t> ids;
  auto take = [&](const wire::Frame& f) {
    REQUIRE(f.body_type() == wire::Body::Publish);
    const wire::Publish* p = f.body_as_Publish();
    ids.push_back(p->request_id());
    auto* payload = p->messages()->Get(0)->payload();
    payloads.emplace_back(reinterpret_cast<const char*>(payload->data()),
                          payload->size());
  };
  while (const wire::Frame* f = next_frame(broker, 200ms)) {
    take(*f);
    ++before_answer;
  }
  MESSAGE(before_answer << " of " << kMore
                        << " frames arrived before the first was answered");
  // Under TSan a call can take longer than the 50 us that count as
  // streaming; then frames go out at once, which is right too.
  CHECK(before_answer >= 15);
  if (!kUnderTsan) CHECK(before_answer <= 16);

  broker.publish_ack(first_id, 0);
  while (payloads.size() < size_t(kMore))
    take(expect(broker, wire::Body::Publish, 5000ms));
  for (int i = 0; i < kMore; ++i) {
    CHECK(payloads[size_t(i)] == std::to_string(i + 1));
    broker.publish_ack(ids[size_t(i)], uint64_t(i) + 1);
  }
  client->flush();
  CHECK(confirmed == kMore + 1);
}

TEST_CASE("coalescing: a paced publisher's frames are not held") {
  FakeBroker broker;
  auto client = connect(broker);
  // 20 unanswered, one every 2 ms: each goes at once, however many wait.
  for (int i = 0; i < 20; ++i) {
    client->publish_async("t", one("paced " + std::to_string(i)));
    expect(broker, wire::Body::Publish, 1000ms);
    std::this_thread::sleep_for(2ms);
  }
}

TEST_CASE(
    "coalescing: acks made while more deliveries are queued merge into one "
    "range, sent when next() is about to wait") {
  FakeBroker broker;
  auto client = connect(broker);
  Subscription sub = subscribe(*client, broker);
  broker.deliver_many(7, "t", 100, 50);
  for (int i = 0; i < 49; ++i) {
    auto m = sub.next(5s);
    REQUIRE(m);
    CHECK(m->offset == uint64_t(100 + i));
    sub.ack(*m);
  }
  auto last = sub.next(5s);  // taken, not acked yet
  REQUIRE(last);
  // Nothing more is queued: next() sends the held acks before it waits.
  auto waiting = std::async(std::launch::async, [&] { return sub.next(2s); });
  const wire::Frame& f = expect(broker, wire::Body::Ack, 1000ms);
  CHECK(f.body_as_Ack()->consumer_id() == 7);
  CHECK(ranges(f) == Ranges{{100, 148}});
  broker.deliver_many(7, "t", 150, 1);
  auto m = waiting.get();
  REQUIRE(m);
  CHECK(m->offset == 150);
  // With nothing queued an ack is not held.
  sub.ack(*last);
  CHECK(ranges(expect(broker, wire::Body::Ack)) == Ranges{{149, 149}});
}

TEST_CASE(
    "coalescing: a held ack leaves within the keeper's bound, and before any "
    "later frame") {
  FakeBroker broker;
  auto client = connect(broker);
  Subscription sub = subscribe(*client, broker);
  broker.deliver_many(7, "t", 0, 5);
  auto take = [&] {
    auto m = sub.next(5s);
    REQUIRE(m);
    return *m;
  };
  Message m0 = take();
  // Acked with more queued, and then nothing happens: the keeper sends it.
  auto acked_at = Clock::now();
  sub.ack(m0);
  const wire::Frame& f = expect(broker, wire::Body::Ack);
  auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
      Clock::now() - acked_at);
  MESSAGE("a held ack arrived after " << waited.count() << " us");
  CHECK(waited < 500ms);
  CHECK(ranges(f) == Ranges{{0, 0}});

  // An ack then a nack: in that order, the ack not overtaken.
  sub.ack(take());
  sub.nack(take());
  CHECK(ranges(expect(broker, wire::Body::Ack)) == Ranges{{1, 1}});
  expect(broker, wire::Body::Nack);

  // An ack then a publish: the ack goes first.
  sub.ack(take());
  client->publish_async("t", one("after the ack"));
  CHECK(ranges(expect(broker, wire::Body::Ack)) == Ranges{{3, 3}});
  expect(broker, wire::Body::Publish);
}

}  // namespace tern::test
