// Bad-input tests: a raw TCP socket sends what no correct client would, and
// the broker must answer with an Error frame, close that connection, and keep
// serving everyone else without losing anything it confirmed.
//
// Each test confirms a few messages first through a real tern::Client and
// ends by checking that the broker process is alive and those messages are
// all still there.
#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "broker_process.h"
#include "raw_connection.h"
#include "frame.h"
#include "tern/client.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kTopic[] = "safe";

// Expects an Error frame with `code`, then the connection closed.
void expect_error_and_close(RawConnection& conn, wire::ErrorCode code) {
  Reply reply = conn.next(3s);
  INFO("reply message: " << reply.message);
  REQUIRE(reply.frame);
  REQUIRE(reply.type == wire::Body::Error);
  CHECK(wire::EnumNameErrorCode(reply.code) ==
        std::string(wire::EnumNameErrorCode(code)));
  CHECK_MESSAGE(conn.wait_closed(3s), "broker left the connection open");
}

std::string random_bytes(std::mt19937& rng, size_t size) {
  std::string bytes(size, '\0');
  for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
  return bytes;
}

std::string le32(uint32_t value) {
  std::string bytes(4, '\0');
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// A frame whose length prefix is honest but whose body is noise.
std::string garbage_frame(std::mt19937& rng, uint32_t body_size) {
  return le32(body_size) + random_bytes(rng, body_size);
}

// A broker with a few confirmed messages, checked again at the end.
class Fixture {
 public:
  Fixture() {
    auto client = Client::connect(broker.address());
    for (int i = 0; i < 20; ++i) {
      std::string payload = "safe-" + std::to_string(i);
      confirmed[client->publish(kTopic, payload)] = payload;
    }
  }

  // The broker is alive, serves a new client, and still has every message.
  void check_intact() {
    INFO("broker stderr:\n" << broker.log());
    REQUIRE(broker.running());
    REQUIRE(kill(broker.pid(), 0) == 0);
    auto client = Client::connect(broker.address());
    client->ping();
    std::string payload = "after-" + std::to_string(confirmed.size());
    confirmed[client->publish(kTopic, payload)] = payload;

    std::map<uint64_t, std::string> stored;
    for (const auto& m : read_topic(broker.address(), kTopic)) {
      stored[m.offset] = m.payload;
    }
    CHECK(stored == confirmed);
  }

  BrokerProcess broker;
  std::map<uint64_t, std::string> confirmed;
};

}  // namespace

TEST_CASE(
    "bad input: garbage bytes get an Error and a close; other clients carry "
    "on") {
  Fixture f;
  std::mt19937 rng(12345);

  auto good = Client::connect(f.broker.address());
  SubscribeOptions options;
  options.topic = "live";
  options.subscription = "watcher";
  options.start = StartPosition::kEarliest;
  auto sub = good->subscribe(options);
  for (int i = 0; i < 10; ++i)
    good->publish("live", "before-" + std::to_string(i));

  // Noise as the very first frame.
  RawConnection early(f.broker.address());
  REQUIRE(early.ok());
  REQUIRE(early.send_bytes(garbage_frame(rng, 1000)));

  // Noise after a proper Hello.
  RawConnection late(f.broker.address());
  REQUIRE(late.ok());
  REQUIRE(late.hello().type == wire::Body::HelloOk);
  REQUIRE(late.send_bytes(garbage_frame(rng, 333)));

  for (int i = 0; i < 10; ++i)
    good->publish("live", "during-" + std::to_string(i));
  expect_error_and_close(early, wire::ErrorCode::BadFrame);
  expect_error_and_close(late, wire::ErrorCode::BadFrame);
  for (int i = 0; i < 10; ++i)
    good->publish("live", "after-" + std::to_string(i));

  auto got = receive(sub, 100, 1s, 5s);
  REQUIRE(got.size() == 30);
  CHECK(got[0].payload == "before-0");
  CHECK(got[10].payload == "during-0");
  CHECK(got[29].payload == "after-9");
  good->ping();
  f.check_intact();
}

TEST_CASE("bad input: truncated frames followed by a close") {
  Fixture f;
  flatbuffers::FlatBufferBuilder hello;
  frame::finish(hello, wire::Body::Hello,
                wire::CreateHelloDirect(hello, 1, 1, "raw", "").Union());
  std::string whole(reinterpret_cast<const char*>(hello.GetBufferPointer()),
                    hello.GetSize());

  for (size_t cut :
       {size_t(1), size_t(3), size_t(4), whole.size() / 2, whole.size() - 1}) {
    CAPTURE(cut);
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    REQUIRE(conn.send_bytes(whole.substr(0, cut)));
  }  // closed here, mid-frame

  {
    // Also mid-frame after a proper session start.
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    REQUIRE(conn.hello().type == wire::Body::HelloOk);
    flatbuffers::FlatBufferBuilder ping;
    frame::finish(ping, wire::Body::Ping, wire::CreatePing(ping, 9).Union());
    REQUIRE(conn.send_bytes(ping.GetBufferPointer(), ping.GetSize() - 2));
  }
  f.check_intact();
}

TEST_CASE(
    "bad input: an oversized length prefix is refused without waiting for the "
    "body") {
  Fixture f;
  {
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    REQUIRE(conn.send_bytes(le32(0x7fffffff)));
    expect_error_and_close(conn, wire::ErrorCode::FrameTooLarge);
  }
  {
    // One byte over the limit the broker announced, after Hello.
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    Reply ok = conn.hello();
    REQUIRE(ok.type == wire::Body::HelloOk);
    REQUIRE(ok.max_frame_bytes > 0);
    REQUIRE(conn.send_bytes(le32(ok.max_frame_bytes + 1)));
    expect_error_and_close(conn, wire::ErrorCode::FrameTooLarge);
  }
  f.check_intact();
}

TEST_CASE("bad input: the session must start with exactly one Hello") {
  Fixture f;
  {
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    flatbuffers::FlatBufferBuilder fbb;
    frame::finish(fbb, wire::Body::Ping, wire::CreatePing(fbb, 5).Union());
    REQUIRE(conn.send_frame(fbb));
    expect_error_and_close(conn, wire::ErrorCode::HelloRequired);
  }
  {
    // A publish before Hello is refused and stores nothing.
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint8_t> payload = {'s', 'n', 'e', 'a', 'k'};
    std::vector<flatbuffers::Offset<wire::Message>> messages = {
        wire::CreateMessageDirect(fbb, nullptr, nullptr, &payload)};
    frame::finish(
        fbb, wire::Body::Publish,
        wire::CreatePublishDirect(fbb, 3, kTopic, true, &messages).Union());
    REQUIRE(conn.send_frame(fbb));
    expect_error_and_close(conn, wire::ErrorCode::HelloRequired);
  }
  {
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    REQUIRE(conn.hello().type == wire::Body::HelloOk);
    Reply second = conn.hello();
    REQUIRE(second.type == wire::Body::Error);
    CHECK(second.code == wire::ErrorCode::HelloRequired);
    CHECK(conn.wait_closed(3s));
  }
  {
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    Reply reply = conn.hello(99);
    REQUIRE(reply.type == wire::Body::Error);
    CHECK(reply.code == wire::ErrorCode::UnsupportedVersion);
    CHECK(conn.wait_closed(3s));
  }
  f.check_intact();  // includes: the sneaky publish is not in the topic
}

TEST_CASE("bad input: an unknown frame type is refused") {
  Fixture f;
  RawConnection conn(f.broker.address());
  REQUIRE(conn.ok());
  REQUIRE(conn.hello().type == wire::Body::HelloOk);
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(fbb, static_cast<wire::Body>(200),
                wire::CreatePing(fbb, 11).Union());
  REQUIRE(conn.send_frame(fbb));
  expect_error_and_close(conn, wire::ErrorCode::UnknownFrameType);
  f.check_intact();
}

TEST_CASE("bad input: frames only a broker may send are refused") {
  Fixture f;
  using Build = void (*)(flatbuffers::FlatBufferBuilder&);
  std::vector<std::pair<const char*, Build>> frames = {
      {"Deliver",
       [](flatbuffers::FlatBufferBuilder& fbb) {
         std::vector<flatbuffers::Offset<wire::Delivery>> none;
         frame::finish(
             fbb, wire::Body::Deliver,
             wire::CreateDeliverDirect(fbb, 1, kTopic, "s", &none).Union());
       }},
      {"HelloOk",
       [](flatbuffers::FlatBufferBuilder& fbb) {
         frame::finish(
             fbb, wire::Body::HelloOk,
             wire::CreateHelloOkDirect(fbb, 1, 1, "fake", 1024).Union());
       }},
      {"PublishAck",
       [](flatbuffers::FlatBufferBuilder& fbb) {
         std::vector<wire::PublishResult> results = {
             wire::PublishResult(0, wire::ErrorCode::None, false, false)};
         frame::finish(fbb, wire::Body::PublishAck,
                       wire::CreatePublishAckDirect(fbb, 1, &results).Union());
       }},
      {"SubscribeOk",
       [](flatbuffers::FlatBufferBuilder& fbb) {
         frame::finish(fbb, wire::Body::SubscribeOk,
                       wire::CreateSubscribeOkDirect(fbb, 1, 1, "s").Union());
       }},
      {"Pong",
       [](flatbuffers::FlatBufferBuilder& fbb) {
         frame::finish(fbb, wire::Body::Pong, wire::CreatePong(fbb, 1).Union());
       }},
  };
  for (const auto& [name, build] : frames) {
    CAPTURE(name);
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    REQUIRE(conn.hello().type == wire::Body::HelloOk);
    flatbuffers::FlatBufferBuilder fbb;
    build(fbb);
    REQUIRE(conn.send_frame(fbb));
    expect_error_and_close(conn, wire::ErrorCode::NotAllowed);
  }
  f.check_intact();
}

TEST_CASE("bad input: acks racing a consumer's close are ignored") {
  Fixture f;
  RawConnection conn(f.broker.address());
  REQUIRE(conn.hello().type == wire::Body::HelloOk);
  auto send = [&](wire::Body type, flatbuffers::Offset<void> body,
                  flatbuffers::FlatBufferBuilder& fbb) {
    frame::finish(fbb, type, body);
    REQUIRE(conn.send_frame(fbb));
  };
  {
    flatbuffers::FlatBufferBuilder fbb;
    send(wire::Body::Subscribe,
         wire::CreateSubscribeDirect(fbb, 5, kTopic, "racer",
                                     wire::StartPosition::Earliest)
             .Union(),
         fbb);
  }
  Reply subscribed = conn.next(3s);
  REQUIRE(subscribed.type == wire::Body::SubscribeOk);
  REQUIRE(conn.next(3s).type == wire::Body::Deliver);
  auto admin = Client::connect(f.broker.address());
  admin->delete_subscription(kTopic, "racer");
  REQUIRE(conn.next(3s).type == wire::Body::ConsumerClosed);

  auto ack = [&](uint64_t consumer_id) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<wire::OffsetRange> ranges{{0, 5}};
    send(wire::Body::Ack,
         wire::CreateAckDirect(fbb, consumer_id, &ranges).Union(), fbb);
    fbb.Clear();
    send(wire::Body::Ping, wire::CreatePing(fbb, 6).Union(), fbb);
  };
  // Consumer 1 was this connection's: its late ack gets no reply at all.
  ack(1);
  CHECK(conn.next(3s).type == wire::Body::Pong);
  // Consumer 2 never existed here.
  ack(2);
  Reply unknown = conn.next(3s);
  CHECK(unknown.type == wire::Body::Error);
  CHECK(unknown.code == wire::ErrorCode::UnknownConsumer);
  CHECK(unknown.request_id == 0);
  CHECK(conn.next(3s).type == wire::Body::Pong);
  f.check_intact();
}

TEST_CASE("bad input: a half-closed client still gets every reply owed") {
  Fixture f;
  for (int round = 0; round < 5; ++round) {
    RawConnection conn(f.broker.address());
    REQUIRE(conn.hello().type == wire::Body::HelloOk);
    // Requests answered only after a commit, then the client's end of
    // input, at once, in one go.
    std::string bytes;
    auto add = [&](wire::Body type, flatbuffers::FlatBufferBuilder& fbb,
                   flatbuffers::Offset<void> body) {
      frame::finish(fbb, type, body);
      bytes.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                   fbb.GetSize());
    };
    for (uint64_t id = 10; id < 13; ++id) {
      flatbuffers::FlatBufferBuilder fbb;
      std::vector<flatbuffers::Offset<wire::Message>> messages{
          wire::CreateMessageDirect(fbb, nullptr, nullptr, nullptr)};
      add(wire::Body::Publish, fbb,
          wire::CreatePublishDirect(fbb, id, kTopic, true, &messages).Union());
    }
    flatbuffers::FlatBufferBuilder create;
    add(wire::Body::CreateTopic, create,
        wire::CreateCreateTopicDirect(create, 13,
                                      ("made-" + std::to_string(round)).c_str())
            .Union());
    flatbuffers::FlatBufferBuilder ping;
    add(wire::Body::Ping, ping, wire::CreatePing(ping, 14).Union());
    REQUIRE(conn.send_bytes(bytes));
    conn.shutdown_write();

    std::map<wire::Body, int> got;
    for (Reply r = conn.next(3s); r.frame; r = conn.next(3s)) ++got[r.type];
    CAPTURE(round);
    CHECK(got[wire::Body::PublishAck] == 3);
    CHECK(got[wire::Body::CreateTopicOk] == 1);
    CHECK(got[wire::Body::Pong] == 1);
    CHECK(conn.wait_closed(3s));
    for (int i = 0; i < 3; ++i) f.confirmed[f.confirmed.size()] = "";
  }
  f.check_intact();
}

TEST_CASE("bad input: no frame the broker sends passes its max frame size") {
  constexpr uint32_t kMax = 1u << 20;
  BrokerOptions options;
  options.extra_args = {"--max-frame", "1MiB"};
  BrokerProcess broker(options);
  RawConnection conn(broker.address());
  Reply hello = conn.hello();
  REQUIRE(hello.max_frame_bytes == kMax);
  // The longest names, so that the Deliver envelope and the dead-letter
  // headers are as large as they get.
  std::string topic(196, 't'), name(200, 's');
  const uint32_t limit = kMax - frame::kDeliverReserveBytes;
  // A Publish of one message whose frame is `size` bytes long (or just
  // under: FlatBuffers pads).
  auto publish = [&](uint64_t request_id, uint32_t size) {
    flatbuffers::FlatBufferBuilder fbb;
    for (size_t payload = size;; payload -= 8) {
      fbb.Clear();
      std::vector<uint8_t> bytes(payload, 'p');
      std::vector<flatbuffers::Offset<wire::Message>> messages{
          wire::CreateMessageDirect(fbb, nullptr, nullptr, &bytes)};
      frame::finish(fbb, wire::Body::Publish,
                    wire::CreatePublishDirect(fbb, request_id, topic.c_str(),
                                              true, &messages)
                        .Union());
      if (fbb.GetSize() - frame::kLengthBytes <= size) break;
    }
    CHECK(fbb.GetSize() - frame::kLengthBytes > size - 16);
    REQUIRE(conn.send_frame(fbb));
  };
  publish(1, limit + 16);
  Reply refused = conn.next(5s);
  CHECK(refused.type == wire::Body::Error);
  CHECK(refused.code == wire::ErrorCode::LimitExceeded);
  CHECK(refused.request_id == 1);
  publish(2, limit);
  CHECK(conn.next(5s).type == wire::Body::PublishAck);

  auto subscribe = [&](const std::string& on, const char* dead_letters) {
    flatbuffers::FlatBufferBuilder fbb;
    frame::finish(fbb, wire::Body::Subscribe,
                  wire::CreateSubscribeDirect(fbb, 3, on.c_str(), name.c_str(),
                                              wire::StartPosition::Earliest,
                                              1000, 0, 0, 0, 16, dead_letters)
                      .Union());
    REQUIRE(conn.send_frame(fbb));
    REQUIRE(conn.next(5s).type == wire::Body::SubscribeOk);
    Reply deliver = conn.next(5s);
    REQUIRE(deliver.type == wire::Body::Deliver);
    CHECK(deliver.bytes <= kMax);
    CHECK(deliver.bytes > limit);
  };
  subscribe(topic, "");  // consumer 1, dead letters to "<topic>.dlq"
  // Rejected, it is dead-lettered with its tern-dlq-* headers, and that
  // copy is delivered within the limit too.
  flatbuffers::FlatBufferBuilder nack;
  std::vector<wire::OffsetRange> ranges{{0, 0}};
  frame::finish(nack, wire::Body::Nack,
                wire::CreateNackDirect(nack, 1, &ranges, 0, true).Union());
  REQUIRE(conn.send_frame(nack));
  subscribe(topic + ".dlq", "x");  // "<topic>.dlq.dlq" would be too long
}

TEST_CASE(
    "bad input: a barrage of random connections leaves the broker intact") {
  Fixture f;
  std::mt19937 rng(777);
  for (int i = 0; i < 40; ++i) {
    RawConnection conn(f.broker.address());
    REQUIRE(conn.ok());
    if (i % 2 == 1) REQUIRE(conn.hello().type == wire::Body::HelloOk);
    // Pure noise of any length, including bogus length prefixes; the send
    // may fail once the broker has closed, which is fine.
    conn.send_bytes(random_bytes(rng, 1 + rng() % 3000));
    if (i % 4 == 0) {
      // Wait for the broker's verdict on some; with bogus lengths the broker
      // may also just wait for more bytes, so no verdict is required.
      conn.next(100ms);
    }
  }
  f.check_intact();
}

}  // namespace tern::test
