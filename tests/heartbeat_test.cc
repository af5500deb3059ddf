// Heartbeats: a client that promised a frame every Hello.heartbeat_ms and
// then goes silent (its host vanished: no FIN, no reset) is closed after two
// intervals, and what it held goes to other consumers at once, long before
// the ack timeout. One that keeps its promise, or made none, stays.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "broker_process.h"
#include "raw_connection.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void subscribe_raw(RawConnection& raw, const char* topic,
                   const char* subscription) {
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(fbb, wire::Body::Subscribe,
                wire::CreateSubscribeDirect(fbb, 2, topic, subscription,
                                            wire::StartPosition::Earliest, 100)
                    .Union());
  REQUIRE(raw.send_frame(fbb));
  REQUIRE(raw.next(3s).type == wire::Body::SubscribeOk);
}

bool ping_raw(RawConnection& raw, uint64_t id) {
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(fbb, wire::Body::Ping, wire::CreatePing(fbb, id).Union());
  return raw.send_frame(fbb) && raw.next(3s).type == wire::Body::Pong;
}

TEST_CASE("heartbeat: a consumer that goes silent is closed after two "
          "intervals, and its messages go to another at once") {
  BrokerProcess broker;
  auto producer = Client::connect(broker.address());
  for (int i = 0; i < 5; ++i) producer->publish("work", "job");

  RawConnection vanishing(broker.address());
  Reply ok = vanishing.hello(frame::kProtocolVersion, 300);
  REQUIRE(ok.type == wire::Body::HelloOk);
  CHECK(ok.heartbeat_ms == 300);
  subscribe_raw(vanishing, "work", "workers");
  REQUIRE(vanishing.next(3s).type == wire::Body::Deliver);
  // From here it neither reads nor writes, as if its host had gone.

  auto start = Clock::now();
  SubscribeOptions options;
  options.topic = "work";
  options.subscription = "workers";
  auto other = Client::connect(broker.address());
  Subscription sub = other->subscribe(options);
  int got = 0;
  while (got < 5) {
    auto m = sub.next(5s);
    if (!m) break;
    sub.ack(*m);
    ++got;
  }
  CHECK(got == 5);
  // Two intervals (0.6 s) and the once-a-second check; the ack timeout is
  // 30 s.
  CHECK(Clock::now() - start < 4s);
  CHECK(vanishing.wait_closed(1s));
  CHECK(broker.log().find("no frame for two heartbeat intervals") !=
        std::string::npos);
}

TEST_CASE("heartbeat: a client that keeps sending, or made no promise, "
          "stays") {
  BrokerProcess broker;
  RawConnection beating(broker.address());
  REQUIRE(beating.hello(frame::kProtocolVersion, 200).heartbeat_ms == 200);
  RawConnection quiet(broker.address());
  REQUIRE(quiet.hello().heartbeat_ms == 0);
  RawConnection hasty(broker.address());
  CHECK(hasty.hello(frame::kProtocolVersion, 1).heartbeat_ms == 100);

  for (uint64_t i = 1; i <= 15; ++i) {  // 1.5 s: over seven intervals
    REQUIRE(ping_raw(beating, i));
    std::this_thread::sleep_for(100ms);
  }
  CHECK(ping_raw(beating, 99));
  CHECK(ping_raw(quiet, 99));
  CHECK(hasty.wait_closed(2s));  // silent for 1.5 s, promised 0.1 s
}

}  // namespace
}  // namespace tern::test
