// Tests for the frame codec: frame::finish on the way out, FrameReader on the
// way in, including the ways a stream can be cut up or be hostile.
#include "frame.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace wire = tern::wire;
using tern::frame::FrameReader;
using Result = FrameReader::Result;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

std::vector<uint8_t> u8(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::string str(const flatbuffers::Vector<uint8_t>* v) {
  REQUIRE(v != nullptr);
  return std::string(v->begin(), v->end());
}

Bytes ping_frame(uint64_t request_id) {
  flatbuffers::FlatBufferBuilder fbb;
  tern::frame::finish(fbb, wire::Body::Ping,
                      wire::CreatePing(fbb, request_id).Union());
  return bytes_of(fbb);
}

Bytes deliver_frame(uint64_t consumer_id, uint64_t first_offset) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::Delivery>> deliveries;
  for (uint64_t i = 0; i < 3; ++i) {
    auto header = wire::CreateHeaderDirect(fbb, "h", nullptr);
    std::vector<flatbuffers::Offset<wire::Header>> headers{header};
    auto key = u8("key");
    auto payload = u8("payload-" + std::to_string(i));
    deliveries.push_back(wire::CreateDeliveryDirect(fbb, first_offset + i, 1,
                                                    1700000000000 + int64_t(i),
                                                    &key, &headers, &payload));
  }
  tern::frame::finish(fbb, wire::Body::Deliver,
                      wire::CreateDeliverDirect(fbb, consumer_id, "orders",
                                                "billing", &deliveries)
                          .Union());
  return bytes_of(fbb);
}

void check_deliver(const wire::Frame* frame, uint64_t consumer_id,
                   uint64_t first_offset) {
  REQUIRE(frame->body_type() == wire::Body::Deliver);
  const auto* deliver = frame->body_as_Deliver();
  REQUIRE(deliver != nullptr);
  CHECK(deliver->consumer_id() == consumer_id);
  CHECK(deliver->topic()->str() == "orders");
  REQUIRE(deliver->messages() != nullptr);
  REQUIRE(deliver->messages()->size() == 3);
  for (uint32_t i = 0; i < 3; ++i) {
    const auto* d = deliver->messages()->Get(i);
    CHECK(d->offset() == first_offset + i);
    CHECK(d->timestamp_ms() == 1700000000000 + int64_t(i));
    CHECK(str(d->payload()) == "payload-" + std::to_string(i));
  }
}

// Writes the 4-byte little-endian length prefix.
Bytes length_prefix(uint32_t length) {
  return Bytes{uint8_t(length), uint8_t(length >> 8), uint8_t(length >> 16),
               uint8_t(length >> 24)};
}

// The same frame one byte longer (a trailing byte the FlatBuffer does not
// use), so whatever follows it in a stream starts at an odd address.
Bytes odd_length(Bytes frame) {
  frame.push_back(0xAB);
  uint32_t length = uint32_t(frame.size() - 4);
  Bytes prefix = length_prefix(length);
  std::copy(prefix.begin(), prefix.end(), frame.begin());
  return frame;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// One frame of every type, each with a check of its contents.
struct Sample {
  wire::Body type;
  Bytes bytes;
  std::function<void(const wire::Frame*)> check;
};

std::vector<Sample> one_of_each() {
  std::vector<Sample> samples;
  auto add = [&](wire::Body type, flatbuffers::FlatBufferBuilder& fbb,
                 flatbuffers::Offset<void> body,
                 std::function<void(const wire::Frame*)> check) {
    tern::frame::finish(fbb, type, body);
    samples.push_back({type, bytes_of(fbb), std::move(check)});
  };

  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::Hello, fbb,
        wire::CreateHelloDirect(fbb, 1, 1, "test-client", "token").Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_Hello();
          CHECK(m->request_id() == 1);
          CHECK(m->protocol_version() == 1);
          CHECK(m->client_name()->str() == "test-client");
          CHECK(m->auth_token()->str() == "token");
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::HelloOk, fbb,
        wire::CreateHelloOkDirect(fbb, 1, 1, "tern", 16u << 20).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_HelloOk();
          CHECK(m->server_name()->str() == "tern");
          CHECK(m->max_frame_bytes() == 16u << 20);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::Ping, fbb, wire::CreatePing(fbb, 77).Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_Ping()->request_id() == 77);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::Pong, fbb, wire::CreatePong(fbb, 78).Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_Pong()->request_id() == 78);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::Error, fbb,
        wire::CreateErrorDirect(fbb, 5, wire::ErrorCode::InvalidTopic, "bad")
            .Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_Error();
          CHECK(m->request_id() == 5);
          CHECK(m->code() == wire::ErrorCode::InvalidTopic);
          CHECK(m->message()->str() == "bad");
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto payload = u8("hello");
    std::vector<flatbuffers::Offset<wire::Message>> messages{
        wire::CreateMessageDirect(fbb, nullptr, nullptr, &payload)};
    add(wire::Body::Publish, fbb,
        wire::CreatePublishDirect(fbb, 9, "orders", false, &messages).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_Publish();
          CHECK(m->request_id() == 9);
          CHECK(m->topic()->str() == "orders");
          CHECK(m->confirm() == false);
          REQUIRE(m->messages()->size() == 1);
          CHECK(str(m->messages()->Get(0)->payload()) == "hello");
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<wire::PublishResult> results{
        wire::PublishResult(10, wire::ErrorCode::None, false, false),
        wire::PublishResult(0, wire::ErrorCode::StorageFailure, false, false)};
    add(wire::Body::PublishAck, fbb,
        wire::CreatePublishAckDirect(fbb, 9, &results).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_PublishAck();
          REQUIRE(m->results()->size() == 2);
          CHECK(m->results()->Get(0)->offset() == 10);
          CHECK(m->results()->Get(1)->error() ==
                wire::ErrorCode::StorageFailure);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::Subscribe, fbb,
        wire::CreateSubscribeDirect(fbb, 11, "orders", "billing",
                                    wire::StartPosition::Earliest, 50, 2000)
            .Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_Subscribe();
          CHECK(m->subscription()->str() == "billing");
          CHECK(m->start() == wire::StartPosition::Earliest);
          CHECK(m->prefetch() == 50);
          CHECK(m->ack_timeout_ms() == 2000);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::SubscribeOk, fbb,
        wire::CreateSubscribeOkDirect(fbb, 11, 3, "billing").Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_SubscribeOk()->consumer_id() == 3);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::Unsubscribe, fbb,
        wire::CreateUnsubscribe(fbb, 12, 3).Union(), [](const wire::Frame* f) {
          CHECK(f->body_as_Unsubscribe()->consumer_id() == 3);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::UnsubscribeOk, fbb,
        wire::CreateUnsubscribeOk(fbb, 12).Union(), [](const wire::Frame* f) {
          CHECK(f->body_as_UnsubscribeOk()->request_id() == 12);
        });
  }
  samples.push_back({wire::Body::Deliver, deliver_frame(4, 100),
                     [](const wire::Frame* f) { check_deliver(f, 4, 100); }});
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<wire::OffsetRange> ranges{wire::OffsetRange(0, 9),
                                          wire::OffsetRange(12, 12)};
    add(wire::Body::Ack, fbb, wire::CreateAckDirect(fbb, 4, &ranges).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_Ack();
          REQUIRE(m->ranges()->size() == 2);
          CHECK(m->ranges()->Get(0)->last() == 9);
          CHECK(m->ranges()->Get(1)->first() == 12);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<wire::OffsetRange> ranges{wire::OffsetRange(3, 5)};
    add(wire::Body::Nack, fbb,
        wire::CreateNackDirect(fbb, 4, &ranges, 250, true).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_Nack();
          REQUIRE(m->ranges()->size() == 1);
          CHECK(m->ranges()->Get(0)->last() == 5);
          CHECK(m->delay_ms() == 250);
          CHECK(m->dead_letter());
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::ListTopics, fbb,
        wire::CreateListTopicsDirect(fbb, 14, "orders").Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_ListTopics()->request_id() == 14);
          CHECK(f->body_as_ListTopics()->topic()->str() == "orders");
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::SubscriptionInfo>> subs{
        wire::CreateSubscriptionInfoDirect(fbb, "billing", 2, 7, 3)};
    std::vector<flatbuffers::Offset<wire::TopicInfo>> topics{
        wire::CreateTopicInfoDirect(fbb, "orders", 0, 10, &subs)};
    add(wire::Body::TopicList, fbb,
        wire::CreateTopicListDirect(fbb, 15, &topics).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_TopicList();
          REQUIRE(m->topics()->size() == 1);
          const auto* t = m->topics()->Get(0);
          CHECK(t->next_offset() == 10);
          CHECK(t->subscriptions()->Get(0)->lag() == 3);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::ResetSubscription, fbb,
        wire::CreateResetSubscriptionDirect(fbb, 16, "orders", "billing",
                                            wire::StartPosition::Offset, 42)
            .Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_ResetSubscription();
          CHECK(m->subscription()->str() == "billing");
          CHECK(m->start_offset() == 42);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::ResetOk, fbb, wire::CreateResetOk(fbb, 17, 42).Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_ResetOk()->offset() == 42);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto settings = wire::CreateTopicSettings(fbb, 60000, 1 << 20, 100, true);
    add(wire::Body::CreateTopic, fbb,
        wire::CreateCreateTopicDirect(fbb, 18, "jobs", settings, true).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_CreateTopic();
          CHECK(m->topic()->str() == "jobs");
          CHECK(m->settings()->max_bytes() == 1 << 20);
          CHECK(m->settings()->work_queue());
          CHECK(m->temporary());
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::CreateTopicOk, fbb,
        wire::CreateCreateTopicOk(fbb, 18, true).Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_CreateTopicOk()->created());
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::DeleteTopic, fbb,
        wire::CreateDeleteTopicDirect(fbb, 19, "jobs").Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_DeleteTopic()->topic()->str() == "jobs");
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::DeleteSubscription, fbb,
        wire::CreateDeleteSubscriptionDirect(fbb, 20, "jobs", "workers")
            .Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_DeleteSubscription()->subscription()->str() ==
                "workers");
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::DeleteOk, fbb, wire::CreateDeleteOk(fbb, 21).Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_DeleteOk()->request_id() == 21);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::ConsumerClosed, fbb,
        wire::CreateConsumerClosedDirect(fbb, 5, wire::ErrorCode::Deleted,
                                         "topic jobs was deleted")
            .Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_ConsumerClosed();
          CHECK(m->consumer_id() == 5);
          CHECK(m->code() == wire::ErrorCode::Deleted);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto settings = wire::CreateTopicSettings(fbb, 3600000, 0, 500);
    add(wire::Body::AlterTopic, fbb,
        wire::CreateAlterTopicDirect(fbb, 22, "jobs", settings).Union(),
        [](const wire::Frame* f) {
          const auto* m = f->body_as_AlterTopic();
          CHECK(m->topic()->str() == "jobs");
          CHECK(m->settings()->max_messages() == 500);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    add(wire::Body::AlterTopicOk, fbb, wire::CreateAlterTopicOk(fbb, 22).Union(),
        [](const wire::Frame* f) {
          CHECK(f->body_as_AlterTopicOk()->request_id() == 22);
        });
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::PublishPart>> parts = {
        wire::CreatePublishPartDirect(fbb, "orders", nullptr, 7),
        wire::CreatePublishPartDirect(fbb, "audit")};
    add(wire::Body::Transaction, fbb,
        wire::CreateTransactionDirect(fbb, 23, &parts, 99).Union(),
        [](const wire::Frame* f) {
          const auto* t = f->body_as_Transaction();
          CHECK(t->request_id() == 23);
          CHECK(t->producer() == 99);
          REQUIRE(t->parts()->size() == 2);
          CHECK(t->parts()->Get(0)->sequence() == 7);
          CHECK(t->parts()->Get(1)->topic()->str() == "audit");
        });
  }
  return samples;
}

}  // namespace

TEST_CASE("frame: every frame type round-trips through FrameReader") {
  auto samples = one_of_each();
  REQUIRE(samples.size() == size_t(wire::Body::MAX));  // all but NONE
  for (const auto& sample : samples) {
    CAPTURE(tern::frame::body_name(sample.type));
    // The length prefix says how many bytes follow.
    REQUIRE(sample.bytes.size() > 4);
    uint32_t length =
        uint32_t(sample.bytes[0]) | uint32_t(sample.bytes[1]) << 8 |
        uint32_t(sample.bytes[2]) << 16 | uint32_t(sample.bytes[3]) << 24;
    CHECK(length == sample.bytes.size() - 4);

    FrameReader reader;
    reader.feed(sample.bytes.data(), sample.bytes.size());
    const wire::Frame* frame = nullptr;
    REQUIRE(reader.next(&frame) == Result::kFrame);
    REQUIRE(frame != nullptr);
    CHECK(frame->body_type() == sample.type);
    sample.check(frame);
    CHECK(reader.buffered() == 0);
    CHECK(reader.next(&frame) == Result::kNeedMore);
  }
}

TEST_CASE("frame: build_error makes an Error frame") {
  flatbuffers::FlatBufferBuilder fbb;
  tern::frame::build_error(fbb, 42, wire::ErrorCode::BadFrame, "nope");
  FrameReader reader;
  reader.feed(fbb.GetBufferPointer(), fbb.GetSize());
  const wire::Frame* frame = nullptr;
  REQUIRE(reader.next(&frame) == Result::kFrame);
  REQUIRE(frame->body_type() == wire::Body::Error);
  CHECK(frame->body_as_Error()->request_id() == 42);
  CHECK(frame->body_as_Error()->code() == wire::ErrorCode::BadFrame);
  CHECK(frame->body_as_Error()->message()->str() == "nope");
}

TEST_CASE("frame: body_name names known types and tolerates unknown ones") {
  CHECK(std::string(tern::frame::body_name(wire::Body::Publish)) == "Publish");
  CHECK(std::string(tern::frame::body_name(wire::Body::Ack)) == "Ack");
  CHECK(std::string(tern::frame::body_name(static_cast<wire::Body>(200))) ==
        "unknown");
}

TEST_CASE("frame: frames fed one byte at a time come out whole") {
  auto samples = one_of_each();
  Bytes stream;
  for (const auto& s : samples)
    stream.insert(stream.end(), s.bytes.begin(), s.bytes.end());

  // The byte offsets at which each frame becomes complete.
  std::vector<size_t> ends;
  size_t end = 0;
  for (const auto& s : samples) ends.push_back(end += s.bytes.size());

  FrameReader reader;
  size_t seen = 0;
  for (size_t i = 0; i < stream.size(); ++i) {
    reader.feed(&stream[i], 1);
    const wire::Frame* frame = nullptr;
    Result r = reader.next(&frame);
    if (seen < ends.size() && i + 1 == ends[seen]) {
      REQUIRE(r == Result::kFrame);
      CHECK(frame->body_type() == samples[seen].type);
      samples[seen].check(frame);
      ++seen;
    } else {
      REQUIRE(r == Result::kNeedMore);
    }
  }
  CHECK(seen == samples.size());
  CHECK(reader.buffered() == 0);
}

TEST_CASE("frame: several frames in one feed come out in order") {
  auto samples = one_of_each();
  Bytes stream;
  for (const auto& s : samples)
    stream.insert(stream.end(), s.bytes.begin(), s.bytes.end());

  FrameReader reader;
  reader.feed(stream.data(), stream.size());
  const wire::Frame* frame = nullptr;
  for (const auto& s : samples) {
    REQUIRE(reader.next(&frame) == Result::kFrame);
    CHECK(frame->body_type() == s.type);
    s.check(frame);
  }
  CHECK(reader.next(&frame) == Result::kNeedMore);
  CHECK(reader.buffered() == 0);
}

TEST_CASE("frame: a frame that starts at an odd address is still read") {
  // The first frame is one byte longer than its FlatBuffer needs, so the
  // Deliver after it (full of 8-byte fields) starts misaligned in the buffer.
  Bytes first = odd_length(ping_frame(1));
  REQUIRE(first.size() % 2 == 1);
  Bytes stream = concat({first, deliver_frame(7, 1000),
                         odd_length(ping_frame(2)), deliver_frame(8, 2000)});

  FrameReader reader;
  SUBCASE("copied in with feed") { reader.feed(stream.data(), stream.size()); }
  SUBCASE("read in place with prepare and commit") {
    uint8_t* room = reader.prepare(stream.size());
    std::memcpy(room, stream.data(), stream.size());
    reader.commit(stream.size());
  }
  SUBCASE("arriving in uneven pieces") {
    // Pieces of 3 bytes shift every frame's start around inside the buffer.
    for (size_t i = 0; i < stream.size(); i += 3) {
      size_t n = std::min<size_t>(3, stream.size() - i);
      uint8_t* room = reader.prepare(n);
      std::memcpy(room, &stream[i], n);
      reader.commit(n);
    }
  }

  const wire::Frame* frame = nullptr;
  REQUIRE(reader.next(&frame) == Result::kFrame);
  CHECK(frame->body_as_Ping()->request_id() == 1);
  REQUIRE(reader.next(&frame) == Result::kFrame);
  check_deliver(frame, 7, 1000);
  REQUIRE(reader.next(&frame) == Result::kFrame);
  CHECK(frame->body_as_Ping()->request_id() == 2);
  REQUIRE(reader.next(&frame) == Result::kFrame);
  check_deliver(frame, 8, 2000);
  CHECK(reader.next(&frame) == Result::kNeedMore);
}

TEST_CASE("frame: a truncated frame waits for the rest") {
  Bytes frame_bytes = deliver_frame(1, 0);
  FrameReader reader;
  const wire::Frame* frame = nullptr;

  reader.feed(frame_bytes.data(), 3);  // not even the whole length prefix
  CHECK(reader.next(&frame) == Result::kNeedMore);
  reader.feed(frame_bytes.data() + 3, frame_bytes.size() - 4);
  CHECK(reader.next(&frame) == Result::kNeedMore);
  CHECK(reader.next(&frame) ==
        Result::kNeedMore);  // asking again changes nothing
  CHECK(reader.buffered() == frame_bytes.size() - 1);

  reader.feed(frame_bytes.data() + frame_bytes.size() - 1, 1);
  REQUIRE(reader.next(&frame) == Result::kFrame);
  check_deliver(frame, 1, 0);
}

TEST_CASE("frame: a length above the maximum is refused before the body") {
  FrameReader reader(1024);
  const wire::Frame* frame = nullptr;

  SUBCASE("just above") {
    Bytes prefix = length_prefix(1025);
    reader.feed(prefix.data(), prefix.size());  // no body sent at all
    CHECK(reader.next(&frame) == Result::kTooLarge);
    CHECK(reader.error().find("1025") != std::string::npos);
  }
  SUBCASE("far above") {
    Bytes prefix = length_prefix(0xFFFFFFFF);
    reader.feed(prefix.data(), prefix.size());
    CHECK(reader.next(&frame) == Result::kTooLarge);
  }
  SUBCASE("exactly the maximum is allowed and waits for its body") {
    Bytes prefix = length_prefix(1024);
    reader.feed(prefix.data(), prefix.size());
    CHECK(reader.next(&frame) == Result::kNeedMore);
  }
  SUBCASE("a real frame over a small maximum") {
    FrameReader tiny(16);
    Bytes big = deliver_frame(1, 0);
    tiny.feed(big.data(), 4);
    CHECK(tiny.next(&frame) == Result::kTooLarge);
  }
}

TEST_CASE("frame: garbage is refused as invalid") {
  const wire::Frame* frame = nullptr;

  SUBCASE("random bytes behind a plausible length") {
    std::mt19937 random(2024);
    for (int round = 0; round < 200; ++round) {
      CAPTURE(round);
      uint32_t length = 8 + random() % 120;
      Bytes stream = length_prefix(length);
      for (uint32_t i = 0; i < length; ++i) stream.push_back(uint8_t(random()));
      FrameReader reader;
      reader.feed(stream.data(), stream.size());
      Result r = reader.next(&frame);
      CHECK(r == Result::kInvalid);
      CHECK_FALSE(reader.error().empty());
    }
  }
  SUBCASE("all ones") {
    Bytes stream = length_prefix(64);
    stream.resize(68, 0xFF);
    FrameReader reader;
    reader.feed(stream.data(), stream.size());
    CHECK(reader.next(&frame) == Result::kInvalid);
  }
  SUBCASE("a zero-length frame") {
    Bytes stream = length_prefix(0);
    FrameReader reader;
    reader.feed(stream.data(), stream.size());
    CHECK(reader.next(&frame) == Result::kInvalid);
  }
  SUBCASE("a good frame followed by a damaged one") {
    Bytes damaged = deliver_frame(2, 0);
    // Point the root table offset past the end of the buffer.
    damaged[4] = 0xF0;
    damaged[5] = 0xFF;
    Bytes stream = concat({ping_frame(1), damaged});
    FrameReader reader;
    reader.feed(stream.data(), stream.size());
    REQUIRE(reader.next(&frame) == Result::kFrame);
    CHECK(frame->body_as_Ping()->request_id() == 1);
    CHECK(reader.next(&frame) == Result::kInvalid);
  }
  SUBCASE("a frame cut short inside its own length") {
    // The prefix claims fewer bytes than the FlatBuffer needs.
    Bytes whole = deliver_frame(3, 0);
    uint32_t shorter = uint32_t(whole.size() - 4) / 2;
    Bytes stream = length_prefix(shorter);
    stream.insert(stream.end(), whole.begin() + 4, whole.begin() + 4 + shorter);
    FrameReader reader;
    reader.feed(stream.data(), stream.size());
    CHECK(reader.next(&frame) == Result::kInvalid);
  }
}

TEST_CASE("frame: a union type this build does not know is refused") {
  uint8_t raw_type = 0;
  SUBCASE("one past the last type") { raw_type = uint8_t(wire::Body::MAX) + 1; }
  SUBCASE("far past the last type") { raw_type = 200; }

  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreatePing(fbb, 5).Union();
  wire::FrameBuilder builder(fbb);
  builder.add_body_type(static_cast<wire::Body>(raw_type));
  builder.add_body(body);
  fbb.FinishSizePrefixed(builder.Finish());

  FrameReader reader;
  reader.feed(fbb.GetBufferPointer(), fbb.GetSize());
  const wire::Frame* frame = nullptr;
  CHECK(reader.next(&frame) == Result::kUnknownType);
  CHECK(reader.error().find(std::to_string(raw_type)) != std::string::npos);
}

TEST_CASE("frame: patching a valid frame's type byte makes it unknown") {
  // Hand-crafted the other way: a real Ping frame whose type byte is found by
  // its value and overwritten, as a hostile client would.
  Bytes frame_bytes = ping_frame(0x0102030405060708ull);
  FrameReader check_reader;
  check_reader.feed(frame_bytes.data(), frame_bytes.size());
  const wire::Frame* frame = nullptr;
  REQUIRE(check_reader.next(&frame) == Result::kFrame);
  // Locate body_type inside our buffer from the decoded frame's field address.
  // (Generated tables inherit Table privately; this is the cast they use.)
  const uint8_t* type_field =
      reinterpret_cast<const flatbuffers::Table*>(frame)->GetAddressOf(
          wire::Frame::VT_BODY_TYPE);
  REQUIRE(type_field != nullptr);
  REQUIRE(*type_field == uint8_t(wire::Body::Ping));
  // The root table sits root_offset bytes after the length prefix, in
  // check_reader's copy and in ours alike, so the field's offset carries over.
  uint32_t root_offset =
      flatbuffers::ReadScalar<uint32_t>(frame_bytes.data() + 4);
  const uint8_t* start =
      reinterpret_cast<const uint8_t*>(frame) - root_offset - 4;
  size_t at = size_t(type_field - start);
  REQUIRE(at < frame_bytes.size());
  REQUIRE(frame_bytes[at] == uint8_t(wire::Body::Ping));
  frame_bytes[at] = 99;

  FrameReader reader;
  reader.feed(frame_bytes.data(), frame_bytes.size());
  CHECK(reader.next(&frame) == Result::kUnknownType);
}
