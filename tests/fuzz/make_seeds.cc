// make_seeds: writes the seed corpora of the fuzz targets from real frames,
// records and scripts, into DIR/<target>/ (`make fuzz-seeds` runs it with
// DIR = tests/fuzz/corpus). The files are small and checked in; this program
// is how they were made, and how to make them again after a schema change.
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "frame.h"
#include "record.h"
#include "session_script.h"

namespace {

namespace wire = tern::wire;
namespace frame = tern::frame;
namespace session = tern::fuzz::session;

std::string g_root;

void write_seed(const std::string& target, const std::string& name,
                const std::string& bytes) {
  std::string dir = g_root + "/" + target;
  mkdir(g_root.c_str(), 0755);
  mkdir(dir.c_str(), 0755);
  std::string path = dir + "/" + name;
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr ||
      fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    perror(path.c_str());
    exit(1);
  }
  fclose(f);
}

std::string bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

template <typename Build>
std::string make_frame(wire::Body type, Build build) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = build(fbb);
  frame::finish(fbb, type, body.Union());
  return bytes_of(fbb);
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> vec(
    flatbuffers::FlatBufferBuilder& fbb, const std::string& s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>>
some_headers(flatbuffers::FlatBufferBuilder& fbb) {
  std::vector<flatbuffers::Offset<wire::Header>> headers = {
      wire::CreateHeader(fbb, fbb.CreateString("content-type"),
                         vec(fbb, "text/plain")),
      wire::CreateHeader(fbb, fbb.CreateString("trace"), vec(fbb, "\x01\x02"))};
  return fbb.CreateVector(headers);
}

// One real frame of every type, as both sides send them.
std::vector<std::pair<std::string, std::string>> all_frames() {
  using FBB = flatbuffers::FlatBufferBuilder;
  std::vector<std::pair<std::string, std::string>> frames;
  frames.emplace_back("hello", make_frame(wire::Body::Hello, [](FBB& fbb) {
                        return wire::CreateHelloDirect(fbb, 1, 1, "seed",
                                                       "token");
                      }));
  frames.emplace_back("hello_ok", make_frame(wire::Body::HelloOk, [](FBB& fbb) {
                        return wire::CreateHelloOkDirect(
                            fbb, 1, 1, "tern-broker", 16u << 20);
                      }));
  frames.emplace_back("ping", make_frame(wire::Body::Ping, [](FBB& fbb) {
                        return wire::CreatePing(fbb, 7);
                      }));
  frames.emplace_back("pong", make_frame(wire::Body::Pong, [](FBB& fbb) {
                        return wire::CreatePong(fbb, 7);
                      }));
  frames.emplace_back("error", make_frame(wire::Body::Error, [](FBB& fbb) {
                        return wire::CreateErrorDirect(
                            fbb, 3, wire::ErrorCode::InvalidTopic,
                            "topic name must be 1 to 200 bytes");
                      }));
  frames.emplace_back(
      "publish", make_frame(wire::Body::Publish, [](FBB& fbb) {
        auto headers = some_headers(fbb);
        std::vector<flatbuffers::Offset<wire::Message>> messages = {
            wire::CreateMessage(fbb, vec(fbb, "key-1"), headers,
                                vec(fbb, "hello"), fbb.CreateString("id-1")),
            wire::CreateMessage(fbb, 0, 0, vec(fbb, ""), 0, 5000),
            wire::CreateMessage(fbb, 0, 0, vec(fbb, std::string(40, 'p')))};
        return wire::CreatePublishDirect(fbb, 2, "orders", true, &messages);
      }));
  frames.emplace_back(
      "publish_ack", make_frame(wire::Body::PublishAck, [](FBB& fbb) {
        std::vector<wire::PublishResult> results = {
            wire::PublishResult(0, wire::ErrorCode::None, false, false),
            wire::PublishResult(0, wire::ErrorCode::None, true, false),
            wire::PublishResult(0, wire::ErrorCode::StorageFailure, false,
                                false)};
        return wire::CreatePublishAckDirect(fbb, 2, &results);
      }));
  frames.emplace_back(
      "subscribe", make_frame(wire::Body::Subscribe, [](FBB& fbb) {
        return wire::CreateSubscribeDirect(fbb, 4, "orders", "billing",
                                           wire::StartPosition::Earliest, 100,
                                           5000, 0, 0, 3, "orders.failed");
      }));
  frames.emplace_back(
      "subscribe_ok", make_frame(wire::Body::SubscribeOk, [](FBB& fbb) {
        return wire::CreateSubscribeOkDirect(fbb, 4, 1, "billing");
      }));
  frames.emplace_back("unsubscribe",
                      make_frame(wire::Body::Unsubscribe, [](FBB& fbb) {
                        return wire::CreateUnsubscribe(fbb, 5, 1);
                      }));
  frames.emplace_back("unsubscribe_ok",
                      make_frame(wire::Body::UnsubscribeOk, [](FBB& fbb) {
                        return wire::CreateUnsubscribeOk(fbb, 5);
                      }));
  frames.emplace_back(
      "deliver", make_frame(wire::Body::Deliver, [](FBB& fbb) {
        auto headers = some_headers(fbb);
        std::vector<flatbuffers::Offset<wire::Delivery>> messages = {
            wire::CreateDelivery(fbb, 0, 1, 1700000000000, vec(fbb, "key-1"),
                                 headers, vec(fbb, "hello")),
            wire::CreateDelivery(fbb, 1, 2, 1700000000001, 0, 0,
                                 vec(fbb, "x"))};
        return wire::CreateDeliverDirect(fbb, 1, "orders", "billing",
                                         &messages);
      }));
  frames.emplace_back("ack", make_frame(wire::Body::Ack, [](FBB& fbb) {
                        std::vector<wire::OffsetRange> ranges = {
                            wire::OffsetRange(0, 1), wire::OffsetRange(5, 9)};
                        return wire::CreateAckDirect(fbb, 1, &ranges,
                                                     "orders.eu");
                      }));
  frames.emplace_back(
      "nack", make_frame(wire::Body::Nack, [](FBB& fbb) {
        std::vector<wire::OffsetRange> ranges = {wire::OffsetRange(3, 4)};
        return wire::CreateNackDirect(fbb, 2, &ranges, 250, true, "orders.eu");
      }));
  frames.emplace_back("list_topics",
                      make_frame(wire::Body::ListTopics, [](FBB& fbb) {
                        return wire::CreateListTopicsDirect(fbb, 6, "orders");
                      }));
  frames.emplace_back(
      "topic_list", make_frame(wire::Body::TopicList, [](FBB& fbb) {
        std::vector<flatbuffers::Offset<wire::SubscriptionInfo>> subs = {
            wire::CreateSubscriptionInfoDirect(fbb, "billing", 1, 3, 2, 1, 0,
                                               30000, 16, "orders.dlq", 4),
            wire::CreateSubscriptionInfoDirect(fbb, "", 1)};
        auto settings =
            wire::CreateTopicSettings(fbb, 60000, 1 << 20, 1000, true, true);
        std::vector<flatbuffers::Offset<wire::TopicInfo>> topics = {
            wire::CreateTopicInfoDirect(fbb, "orders", 3, 9, &subs, settings, 6,
                                        420, false),
            wire::CreateTopicInfoDirect(fbb, "_inbox.k3", 0, 0, nullptr, 0, 0,
                                        0, true)};
        return wire::CreateTopicListDirect(fbb, 6, &topics);
      }));
  frames.emplace_back("reset_subscription",
                      make_frame(wire::Body::ResetSubscription, [](FBB& fbb) {
                        return wire::CreateResetSubscriptionDirect(
                            fbb, 8, "orders", "billing",
                            wire::StartPosition::Time, 0, 1700000000000);
                      }));
  frames.emplace_back("reset_ok", make_frame(wire::Body::ResetOk, [](FBB& fbb) {
                        return wire::CreateResetOk(fbb, 8, 3);
                      }));
  frames.emplace_back(
      "create_topic", make_frame(wire::Body::CreateTopic, [](FBB& fbb) {
        auto settings =
            wire::CreateTopicSettings(fbb, 60000, 1 << 20, 1000, true, true);
        return wire::CreateCreateTopicDirect(fbb, 9, "_inbox.k3", settings,
                                             true);
      }));
  frames.emplace_back("create_topic_ok",
                      make_frame(wire::Body::CreateTopicOk, [](FBB& fbb) {
                        return wire::CreateCreateTopicOk(fbb, 9, true);
                      }));
  frames.emplace_back("delete_topic",
                      make_frame(wire::Body::DeleteTopic, [](FBB& fbb) {
                        return wire::CreateDeleteTopicDirect(fbb, 10, "orders");
                      }));
  frames.emplace_back("delete_subscription",
                      make_frame(wire::Body::DeleteSubscription, [](FBB& fbb) {
                        return wire::CreateDeleteSubscriptionDirect(
                            fbb, 11, "orders", "billing");
                      }));
  frames.emplace_back(
      "alter_topic", make_frame(wire::Body::AlterTopic, [](FBB& fbb) {
        auto settings = wire::CreateTopicSettings(fbb, 60000, 0, 1000);
        return wire::CreateAlterTopicDirect(fbb, 12, "orders", settings);
      }));
  frames.emplace_back("alter_topic_ok",
                      make_frame(wire::Body::AlterTopicOk, [](FBB& fbb) {
                        return wire::CreateAlterTopicOk(fbb, 12);
                      }));
  frames.emplace_back("delete_ok",
                      make_frame(wire::Body::DeleteOk, [](FBB& fbb) {
                        return wire::CreateDeleteOk(fbb, 11);
                      }));
  frames.emplace_back(
      "consumer_closed", make_frame(wire::Body::ConsumerClosed, [](FBB& fbb) {
        return wire::CreateConsumerClosedDirect(
            fbb, 1, wire::ErrorCode::Deleted, "topic orders was deleted");
      }));
  return frames;
}

void frame_seeds() {
  auto frames = all_frames();
  std::string stream;
  for (const auto& [name, bytes] : frames) {
    write_seed("frame_fuzz", name, std::string(1, '\0') + bytes);
    stream += bytes;
  }
  write_seed("frame_fuzz", "all_types", std::string(1, '\0') + stream);
  // A 1024-byte limit, and a stream whose second frame starts misaligned:
  // the first carries 3 bytes of trailing padding (its length says so),
  // which the Verifier allows.
  write_seed("frame_fuzz", "limit_1024", std::string(1, '\2') + stream);
  std::string padded = frames[0].second + std::string(3, '\0');
  uint32_t length = static_cast<uint32_t>(padded.size() - 4);
  for (int i = 0; i < 4; ++i) padded[i] = static_cast<char>(length >> (8 * i));
  write_seed("frame_fuzz", "misaligned",
             std::string(1, '\0') + padded + frames[2].second);
}

void record_seeds() {
  struct Sample {
    const char* name;
    std::string key, payload;
    bool headers;
  };
  const Sample samples[] = {{"plain", "", "hello", false},
                            {"keyed", "key-1", "hello", true},
                            {"empty", "", "", false}};
  for (const auto& s : samples) {
    flatbuffers::FlatBufferBuilder message;
    auto headers = s.headers ? some_headers(message) : 0;
    message.Finish(wire::CreateMessage(message,
                                       s.key.empty() ? 0 : vec(message, s.key),
                                       headers, vec(message, s.payload)));
    flatbuffers::FlatBufferBuilder record;
    tern::storage::encode_record(
        record,
        *flatbuffers::GetRoot<wire::Message>(message.GetBufferPointer()),
        1700000000000);
    write_seed("record_fuzz", s.name, bytes_of(record));
  }
}

void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out->push_back(static_cast<char>(v >> (8 * i)));
}

// Subscription records as store.cc writes them, behind cursor_fuzz's name.
void cursor_seeds() {
  auto record = [](const std::string& name, uint32_t timeout, uint64_t floor,
                   std::vector<std::pair<uint64_t, uint64_t>> ranges) {
    std::string out(1, static_cast<char>(name.size()));
    out += name;
    put_le(&out, timeout, 4);
    put_le(&out, floor, 8);
    put_le(&out, ranges.size(), 4);
    for (auto [first, last] : ranges) {
      put_le(&out, first, 8);
      put_le(&out, last, 8);
    }
    return out;
  };
  write_seed("cursor_fuzz", "floor_only", record("billing", 30000, 42, {}));
  write_seed("cursor_fuzz", "ranges",
             record("s1", 0, 10, {{12, 12}, {15, 20}, {100, 1000}}));
}

// Scripts in session_script.h's language.
class Script {
 public:
  Script(bool hello, session::Ending ending) {
    bytes_.push_back(static_cast<char>(session::header(hello, ending)));
  }
  Script& op(session::Op op) { return u8(op); }
  Script& u8(uint8_t v) {
    bytes_.push_back(static_cast<char>(v));
    return *this;
  }
  Script& u16(uint16_t v) {
    put_le(&bytes_, v, 2);
    return *this;
  }
  Script& u32(uint32_t v) {
    put_le(&bytes_, v, 4);
    return *this;
  }
  // One kPublish message with only a payload (and a TTL if ttl_ms > 0).
  Script& message(const std::string& payload, uint8_t ttl_ms = 0) {
    u8(ttl_ms ? 0x14 : 0x04).blob("").u8(0).blob(payload);
    return ttl_ms ? u8(ttl_ms) : *this;
  }
  Script& blob(const std::string& s) {  // s.size() < 64
    u8(static_cast<uint8_t>(s.size()));
    bytes_ += s;
    return *this;
  }
  Script& raw(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// The scripts are written one operation per line, as they read.
// clang-format off
void session_seeds() {
  using S = Script;
  const auto ping = session::kPingAndWait;
  write_seed("session_fuzz", "hello_ping",
             S(true, ping).op(session::kPing).u8(9).bytes());
  // Publish 3 messages to "fz" (pool 0) with confirm, subscribe "s1" (pool 1)
  // from the earliest, let deliveries come, ack them, unsubscribe consumer 1.
  write_seed("session_fuzz", "publish_subscribe_ack",
             S(true, ping)
                 .op(session::kPublish).u8(1).u8(0).u8(0x01 | 3 << 2)
                 .u8(7).blob("k").u8(1).u8(1).blob("h").blob("v").blob("one")
                 .u8(4).blob("").u8(0).blob("two")
                 .u8(0).blob("").u8(0).blob("")
                 .op(session::kSubscribe).u8(2).u8(0).u8(1).u8(1).u8(2).u8(3)
                 .u8(0)
                 .op(session::kPause).u8(10)
                 .op(session::kAck).u8(1).u8(1).u8(0).u8(5)
                 .op(session::kUnsubscribe).u8(3).u8(1)
                 .bytes());
  // Messages with producer ids, one repeated within the frame and again in
  // a second frame: the broker confirms the repeats as duplicates.
  write_seed("session_fuzz", "duplicate_ids",
             S(true, ping)
                 .op(session::kPublish).u8(1).u8(0).u8(0x01 | 2 << 2)
                 .u8(0x0C).blob("").u8(0).blob("a").u8(1)
                 .u8(0x0C).blob("").u8(0).blob("b").u8(1)
                 .op(session::kPublish).u8(2).u8(0).u8(0x01 | 1 << 2)
                 .u8(0x0C).blob("").u8(0).blob("c").u8(1)
                 .bytes());
  // An ephemeral consumer with prefetch 1 and a 5 ms ack timeout: the
  // message is redelivered while the script pauses.
  write_seed("session_fuzz", "redeliver",
             S(true, ping)
                 .op(session::kSubscribe).u8(1).u8(1).u8(0).u8(0).u8(2).u8(0)
                 .u8(1).u8(4)
                 .op(session::kPublish).u8(2).u8(1).u8(0x01 | 1 << 2)
                 .u8(4).blob("").u8(0).blob("again")
                 .op(session::kPause).u8(19)
                 .op(session::kAck).u8(1).u8(1).u8(0).u8(0xFF)
                 .bytes());
  write_seed("session_fuzz", "no_hello",
             S(false, ping).op(session::kPing).u8(1).bytes());
  write_seed("session_fuzz", "hello_twice",
             S(true, session::kHalfClose)
                 .op(session::kHello).u8(0).blob("again")
                 .bytes());
  write_seed("session_fuzz", "wrong_version",
             S(false, ping).op(session::kHello).u8(0xF0).u32(2).blob("v2")
                 .bytes());
  write_seed("session_fuzz", "broker_only_deliver",
             S(true, ping).op(session::kBrokerOnly).u8(6).bytes());
  write_seed("session_fuzz", "garbage",
             S(true, ping).op(session::kGarbage).u8(8)
                 .raw(std::string("\x10\0\0\0\0\0\0\0", 8)).bytes());
  write_seed("session_fuzz", "too_large",
             S(true, session::kReset).op(session::kRawBytes).u8(4)
                 .raw("\xff\xff\xff\x7f").bytes());
  write_seed("session_fuzz", "unknown_type",
             S(true, ping).op(session::kBadUnion).u8(99).bytes());
  write_seed("session_fuzz", "long_topic",
             S(true, ping)
                 .op(session::kPublish).u8(1).u8(0xFF).u8(0x01 | 1 << 2)
                 .u8(4).blob("").u8(0).blob("x").bytes());
  write_seed("session_fuzz", "unknown_consumer",
             S(true, ping).op(session::kAck).u8(5).u8(1).u8(0).u8(0)
                 .op(session::kUnsubscribe).u8(2).u8(4).bytes());
  write_seed("session_fuzz", "prefetch_zero",
             S(true, ping).op(session::kSubscribe).u8(1).u8(0).u8(1).u8(0)
                 .u8(1).u8(0).bytes());
  write_seed("session_fuzz", "broker_only_consumer_closed",
             S(true, ping).op(session::kBrokerOnly).u8(11).bytes());

  // Retention, and a topic deleted under its consumer. "t.a.b" is deleted
  // first (it may be left from before), created keeping at most 3 messages,
  // given 5; durable "s1" subscribes from the earliest with prefetch 2, the
  // broker's 10 ms retention trims while the script pauses, then the topic
  // is deleted with the consumer attached (ConsumerClosed), published to
  // again (a new topic), and the closed consumer acks and nacks.
  write_seed("session_fuzz", "retention_delete_under_consumer",
             S(true, ping)
                 .op(session::kDeleteTopic).u8(1).u8(session::kTAB)
                 .op(session::kCreateTopic).u8(2).u8(session::kTAB)
                 .u8(0x02 | 2 << 4).u8(0)
                 .op(session::kPublish).u8(3).u8(session::kTAB).u8(0x01 | 4 << 2)
                 .message("m1").message("m2").message("m3").message("m4")
                 .op(session::kSubscribe).u8(4).u8(session::kTAB)
                 .u8(session::kS1).u8(1).u8(2).u8(1).u8(0)
                 .op(session::kPause).u8(15)
                 .op(session::kPublish).u8(5).u8(session::kTAB).u8(0x01 | 1 << 2)
                 .message("m5")
                 .op(session::kPause).u8(15)
                 .op(session::kDeleteTopic).u8(6).u8(session::kTAB)
                 .op(session::kPublish).u8(7).u8(session::kTAB).u8(0x01 | 1 << 2)
                 .message("after")
                 .op(session::kAck).u8(1).u8(1).u8(0).u8(0xFF)
                 .op(session::kSettleLast).u8(1)
                 .op(session::kListTopics).u8(8).u8(1).u8(session::kTAB)
                 .bytes());
  // Expiry and work queues: "t.b" recreated as a work queue whose messages
  // live 50 ms at most, with dead_letter_expired; messages with a 1 ms TTL,
  // a 200 ms one and none; a durable consumer with max_deliveries 1 whose
  // dead-letter topic is "_inbox.x", which does not exist. It acks one
  // delivery and dead-letters another; the subscription is deleted twice.
  write_seed("session_fuzz", "expiry_work_queue",
             S(true, ping)
                 .op(session::kDeleteTopic).u8(1).u8(session::kTB)
                 .op(session::kCreateTopic).u8(2).u8(session::kTB)
                 .u8(0x02 | 0x04 | 0x08).u8(2)
                 .op(session::kPublish).u8(3).u8(session::kTB).u8(0x01 | 3 << 2)
                 .message("short", 1).message("long", 200).message("plain")
                 .op(session::kSubscribe).u8(4).u8(session::kTB)
                 .u8(session::kS2).u8(1).u8(0).u8(1 << 2 | 3 << 4)
                 .op(session::kPause).u8(19)
                 .op(session::kSettleLast).u8(0)
                 .op(session::kSettleLast).u8(1 | 2)
                 .op(session::kPause).u8(19)
                 .op(session::kListTopics).u8(5).u8(0)
                 .op(session::kDeleteSubscription).u8(6).u8(session::kTB)
                 .u8(session::kS2)
                 .op(session::kDeleteSubscription).u8(7).u8(session::kTB)
                 .u8(session::kS2)
                 .bytes());
  // A wildcard consumer on "t.>" from the earliest: "t.a.b" is created and
  // deleted under it, its deliveries are acked naming the topic, nacked
  // without (InvalidSubscription), and dead-lettered into "t.a.dlq", which
  // the pattern matches too.
  write_seed("session_fuzz", "wildcard_create_delete",
             S(true, ping)
                 .op(session::kSubscribe).u8(1).u8(session::kTGt)
                 .u8(session::kEphemeral).u8(1).u8(0).u8(0)
                 .op(session::kCreateTopic).u8(2).u8(session::kTAB).u8(0)
                 .u8(0)
                 .op(session::kPublish).u8(3).u8(session::kTAB).u8(0x01 | 2 << 2)
                 .message("w1").message("w2")
                 .op(session::kPublish).u8(4).u8(session::kTA).u8(0x01 | 1 << 2)
                 .message("w3")
                 .op(session::kPause).u8(10)
                 .op(session::kSettleLast).u8(0)
                 .op(session::kSettleLast).u8(1 | 8)
                 .op(session::kNack).u8(1).u8(1 | 8 | 16).u8(0).u8(0xFF)
                 .u8(session::kTA)
                 .op(session::kDeleteTopic).u8(5).u8(session::kTAB)
                 .op(session::kPublish).u8(6).u8(session::kTAB).u8(0x01 | 1 << 2)
                 .message("w4")
                 .op(session::kPause).u8(10)
                 .op(session::kAck).u8(1).u8(1 | 8).u8(0).u8(0xFF)
                 .u8(session::kTAB)
                 .op(session::kUnsubscribe).u8(7).u8(1)
                 .bytes());
  // Altering: "t.a" gets max_messages 1 after four messages; then a
  // work_queue change (refused), no settings (limits lifted) and an unknown
  // topic.
  write_seed("session_fuzz", "alter_topic",
             S(true, ping)
                 .op(session::kPublish).u8(1).u8(session::kTA).u8(0x01 | 4 << 2)
                 .message("a1").message("a2").message("a3").message("a4")
                 .op(session::kAlterTopic).u8(2).u8(session::kTA).u8(0x02 | 1 << 4)
                 .u8(0)
                 .op(session::kPause).u8(20)
                 .op(session::kAlterTopic).u8(3).u8(session::kTA).u8(0x02 | 0x04)
                 .u8(0)
                 .op(session::kAlterTopic).u8(4).u8(session::kTA).u8(0).u8(0)
                 .op(session::kAlterTopic).u8(5).u8(session::kZ9).u8(0x02).u8(0)
                 .bytes());
  // Patterns: "*" and "t.*" (one ephemeral each), a pattern with a
  // subscription name, malformed ones; listing and deleting a pattern.
  write_seed("session_fuzz", "patterns",
             S(true, ping)
                 .op(session::kSubscribe).u8(1).u8(session::kStar)
                 .u8(session::kEphemeral).u8(0).u8(0).u8(0)
                 .op(session::kSubscribe).u8(2).u8(session::kTStar)
                 .u8(session::kEphemeral).u8(0).u8(2).u8(0).u8(0)
                 .op(session::kSubscribe).u8(3).u8(session::kTStar)
                 .u8(session::kS1).u8(0).u8(0).u8(0)
                 .op(session::kSubscribe).u8(4).u8(session::kBadStarX)
                 .u8(session::kEphemeral).u8(0).u8(0).u8(0)
                 .op(session::kSubscribe).u8(5).u8(session::kBadGtA)
                 .u8(session::kEphemeral).u8(0).u8(0).u8(0)
                 .op(session::kPublish).u8(6).u8(session::kTB).u8(0x01 | 1 << 2)
                 .message("p")
                 .op(session::kListTopics).u8(7).u8(1).u8(session::kTStar)
                 .op(session::kDeleteTopic).u8(8).u8(session::kTStar)
                 .op(session::kPause).u8(5)
                 .op(session::kSettleLast).u8(0)
                 .bytes());
  // A temporary inbox: created, subscribed to and published to on the first
  // connection, published to from a second; the first is then closed (the
  // inbox goes with it) and the second publishes to the gone inbox
  // (UnknownTopic) and tries to create it not temporary (InvalidTopic).
  write_seed("session_fuzz", "temporary_inbox",
             S(true, ping)
                 .op(session::kCreateTopic).u8(1).u8(session::kInbox)
                 .u8(0x01).u8(0)
                 .op(session::kSubscribe).u8(2).u8(session::kInbox)
                 .u8(session::kEphemeral).u8(0).u8(0).u8(0)
                 .op(session::kPublish).u8(3).u8(session::kInbox)
                 .u8(0x01 | 1 << 2).message("req")
                 .op(session::kSwitch).u8(1)
                 .op(session::kPublish).u8(1).u8(session::kInbox)
                 .u8(0x01 | 1 << 2).message("reply")
                 .op(session::kPause).u8(5)
                 .op(session::kSwitch).u8(0 | 2)
                 .op(session::kSwitch).u8(1)
                 .op(session::kPause).u8(5)
                 .op(session::kPublish).u8(2).u8(session::kInbox)
                 .u8(0x01 | 1 << 2).message("late")
                 .op(session::kCreateTopic).u8(3).u8(session::kInbox)
                 .u8(0).u8(0)
                 .op(session::kListTopics).u8(4).u8(1).u8(session::kInbox)
                 .bytes());
  // A durable consumer on one connection; the other deletes its
  // subscription and its topic, then the first settles what it got, resets
  // the subscription and subscribes again.
  write_seed("session_fuzz", "delete_from_other_connection",
             S(true, session::kReset)
                 .op(session::kSubscribe).u8(1).u8(session::kTB)
                 .u8(session::kS3).u8(1).u8(2).u8(1).u8(0)
                 .op(session::kPublish).u8(2).u8(session::kTB)
                 .u8(0x01 | 3 << 2).message("d1").message("d2").message("d3")
                 .op(session::kPause).u8(5)
                 .op(session::kSwitch).u8(1)
                 .op(session::kDeleteSubscription).u8(1).u8(session::kTB)
                 .u8(session::kS3)
                 .op(session::kDeleteTopic).u8(2).u8(session::kTB)
                 .op(session::kSwitch).u8(0)
                 .op(session::kSettleLast).u8(1 | 4)
                 .op(session::kResetSubscription).u8(3).u8(session::kTB)
                 .u8(session::kS3).u8(1).u8(0).u8(0)
                 .op(session::kSubscribe).u8(4).u8(session::kTB)
                 .u8(session::kS3).u8(1).u8(0).u8(0)
                 .op(session::kPause).u8(5)
                 .bytes());
  // Nack with a delay, then reset a durable subscription back to the start.
  write_seed("session_fuzz", "nack_and_reset",
             S(true, ping)
                 .op(session::kSubscribe).u8(1).u8(session::kFz)
                 .u8(session::kS1).u8(0).u8(2).u8(0).u8(0)
                 .op(session::kPublish).u8(2).u8(session::kFz).u8(0x01 | 2 << 2)
                 .message("n1").message("n2")
                 .op(session::kPause).u8(5)
                 .op(session::kSettleLast).u8(1 | 4)
                 .op(session::kNack).u8(1).u8(1 | 1 << 5).u8(0).u8(0xFF).u8(3)
                 .op(session::kPause).u8(10)
                 .op(session::kResetSubscription).u8(3).u8(session::kFz)
                 .u8(session::kS1).u8(2).u8(0).u8(0)
                 .op(session::kPause).u8(5)
                 .op(session::kResetSubscription).u8(4).u8(session::kFz)
                 .u8(session::kS2).u8(0).u8(0).u8(0)
                 .bytes());
}
// clang-format on

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  frame_seeds();
  record_seeds();
  cursor_seeds();
  session_seeds();
  return 0;
}
