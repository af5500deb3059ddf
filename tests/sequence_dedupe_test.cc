// De-duplication by producer and sequence (Publish.producer, .sequence):
// the runs the broker keeps (ProducerSequences), and a broker answering
// frames sent again by hand, also across a restart and a kill -9.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.h"
#include "producer_sequences.h"
#include "raw_connection.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("producer sequences: runs join, split when forgotten, and expire") {
  ProducerSequences s;
  uint64_t offset = 0;
  // Sequences 10..12 at offsets 0..2: one run.
  for (uint64_t i = 0; i < 3; ++i) s.add(7, 10 + i, i, 1000);
  CHECK(s.runs() == 1);
  REQUIRE(s.find(7, 11, &offset));
  CHECK(offset == 1);
  CHECK_FALSE(s.find(7, 13, &offset));
  CHECK_FALSE(s.find(8, 11, &offset));
  // Another producer's message came between: a new run.
  s.add(7, 13, 4, 1000);
  CHECK(s.runs() == 2);
  REQUIRE(s.find(7, 13, &offset));
  CHECK(offset == 4);

  // 11 was not stored after all: 10 and 12 stay, in two runs.
  s.forget(7, 11, 1);
  CHECK_FALSE(s.find(7, 11, &offset));
  REQUIRE(s.find(7, 12, &offset));
  CHECK(offset == 2);
  REQUIRE(s.find(7, 10, &offset));
  CHECK(offset == 0);
  CHECK(s.runs() == 3);

  // A run takes new messages for kJoinMs only.
  s.add(7, 14, 5, 1000 + ProducerSequences::kJoinMs);
  CHECK(s.runs() == 4);
  s.add(7, 15, 6, 1000 + ProducerSequences::kJoinMs);
  CHECK(s.runs() == 4);

  // Expiry gives each run's sequences back, for the store's range delete.
  auto expired = s.expire(1000);
  CHECK(expired.size() == 3);
  CHECK(s.runs() == 1);
  CHECK_FALSE(s.find(7, 12, &offset));
  REQUIRE(s.find(7, 15, &offset));
  CHECK(offset == 6);
  expired = s.expire(1000 + ProducerSequences::kJoinMs);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].producer == 7);
  CHECK(expired[0].first == 14);
  CHECK(expired[0].end == 16);
  CHECK(s.runs() == 0);
}

// A Publish frame of `payloads` from `producer`, first sequence `sequence`;
// a payload starting with '#' also carries that text as its message id.
flatbuffers::FlatBufferBuilder publish_frame(
    uint64_t request_id, uint64_t producer, uint64_t sequence,
    const std::vector<std::string>& payloads) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::Message>> messages;
  for (const std::string& p : payloads) {
    auto payload =
        fbb.CreateVector(reinterpret_cast<const uint8_t*>(p.data()), p.size());
    auto id = p[0] == '#' ? fbb.CreateString(p) : 0;
    messages.push_back(wire::CreateMessage(fbb, 0, 0, payload, id));
  }
  auto topic = fbb.CreateString("orders");
  auto vector = fbb.CreateVector(messages);
  frame::finish(fbb, wire::Body::Publish,
                wire::CreatePublish(fbb, request_id, topic, true, vector,
                                    producer, sequence)
                    .Union());
  return fbb;
}

// Sends the frame and returns its results as "offset" or "offset dup",
// or the error's name.
std::vector<std::string> publish(RawConnection& raw, uint64_t producer,
                                 uint64_t sequence,
                                 const std::vector<std::string>& payloads) {
  static uint64_t request_id = 100;
  REQUIRE(raw.send_frame(
      publish_frame(++request_id, producer, sequence, payloads)));
  Reply reply = raw.next(5s);
  REQUIRE(reply.type == wire::Body::PublishAck);
  std::vector<std::string> out;
  for (const auto& r : reply.results) {
    if (r.error() != wire::ErrorCode::None)
      out.push_back(wire::EnumNameErrorCode(r.error()));
    else
      out.push_back(std::to_string(r.offset()) + (r.duplicate() ? " dup" : ""));
  }
  return out;
}

using Results = std::vector<std::string>;

std::vector<std::string> payloads(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.payload);
  return out;
}

TEST_CASE(
    "dedupe: a frame sent again with its producer and sequence is "
    "stored once, also after a restart and a kill -9") {
  BrokerProcess broker;
  {
    RawConnection raw(broker.address());
    REQUIRE(raw.hello().type == wire::Body::HelloOk);
    CHECK(publish(raw, 7, 100, {"a", "b", "c"}) == Results{"0", "1", "2"});
    CHECK(publish(raw, 7, 100, {"a", "b", "c"}) ==
          Results{"0 dup", "1 dup", "2 dup"});
    // Overlapping: the known sequence is a duplicate, the rest is new.
    CHECK(publish(raw, 7, 102, {"c", "d", "e"}) == Results{"2 dup", "3", "4"});
    // The same sequences from another producer are other messages.
    CHECK(publish(raw, 8, 100, {"x"}) == Results{"5"});
    // A message with an id is known by its id, not its sequence.
    CHECK(publish(raw, 7, 105, {"#f", "g"}) == Results{"6", "7"});
    CHECK(publish(raw, 9, 0, {"#f"}) == Results{"6 dup"});
    // Producer 0: no de-duplication.
    CHECK(publish(raw, 0, 100, {"y"}) == Results{"8"});
    CHECK(publish(raw, 0, 100, {"y"}) == Results{"9"});
  }
  CHECK(broker.stop() == 0);
  broker.restart();
  {
    RawConnection raw(broker.address());
    REQUIRE(raw.hello().type == wire::Body::HelloOk);
    CHECK(publish(raw, 7, 101, {"b", "c", "d", "e"}) ==
          Results{"1 dup", "2 dup", "3 dup", "4 dup"});
    CHECK(publish(raw, 8, 100, {"x", "z"}) == Results{"5 dup", "10"});
  }
  broker.kill9();
  broker.restart();
  {
    RawConnection raw(broker.address());
    REQUIRE(raw.hello().type == wire::Body::HelloOk);
    CHECK(publish(raw, 8, 101, {"z"}) == Results{"10 dup"});
    CHECK(publish(raw, 7, 100, {"a"}) == Results{"0 dup"});
  }
  CHECK(payloads(read_topic(broker.address(), "orders")) ==
        std::vector<std::string>{"a", "b", "c", "d", "e", "x", "#f", "g", "y",
                                 "y", "z"});
}

TEST_CASE(
    "dedupe: sequences are forgotten after the window, count against "
    "--max-dedupe-ids, and a failed write leaves none behind") {
  SUBCASE("window and limit") {
    BrokerOptions options;
    options.extra_args = {"--dedupe-window", "500", "--max-dedupe-ids", "2"};
    BrokerProcess broker(options);
    RawConnection raw(broker.address());
    REQUIRE(raw.hello().type == wire::Body::HelloOk);
    // One run each: two runs is the limit, so the third producer's message
    // is refused, not stored.
    CHECK(publish(raw, 1, 0, {"a", "b"}) == Results{"0", "1"});
    CHECK(publish(raw, 2, 0, {"c"}) == Results{"2"});
    CHECK(publish(raw, 3, 0, {"d"}) == Results{"LimitExceeded"});
    CHECK(publish(raw, 1, 0, {"a"}) == Results{"0 dup"});
    // Once the window has passed, the runs are gone and make room again.
    std::this_thread::sleep_for(1500ms);
    CHECK(publish(raw, 1, 0, {"a"}) == Results{"3"});
    CHECK(publish(raw, 3, 0, {"d"}) == Results{"4"});
  }
  SUBCASE("a failed write") {
    // Every commit fails: the free-space floor is above any real disk.
    BrokerOptions options;
    options.extra_args = {"--min-free", "1048576GiB"};
    BrokerProcess broker(options);
    RawConnection raw(broker.address());
    REQUIRE(raw.hello().type == wire::Body::HelloOk);
    CHECK(publish(raw, 1, 0, {"a", "b"}) ==
          Results{"StorageFailure", "StorageFailure"});
    CHECK(publish(raw, 1, 0, {"a", "b"}) ==
          Results{"StorageFailure", "StorageFailure"});
  }
}

TEST_CASE("dedupe: a sequence that would pass 2^64-1 is a bad frame") {
  BrokerProcess broker;
  RawConnection raw(broker.address());
  REQUIRE(raw.hello().type == wire::Body::HelloOk);
  REQUIRE(raw.send_frame(publish_frame(1, 7, UINT64_MAX - 1, {"a", "b"})));
  Reply reply = raw.next(5s);
  CHECK(reply.type == wire::Body::Error);
  CHECK(reply.code == wire::ErrorCode::BadFrame);
  CHECK(raw.wait_closed(5s));
  // Others are served as before.
  RawConnection other(broker.address());
  REQUIRE(other.hello().type == wire::Body::HelloOk);
  CHECK(publish(other, 7, UINT64_MAX - 2, {"a", "b"}) == Results{"0", "1"});
}

}  // namespace
}  // namespace tern::test
