// The little language session_fuzz inputs are written in, shared by the target
// (which reads it) and make_seeds.cc (which writes the seed corpus in it).
//
// An input is a script: one header byte, then operations until the input
// runs out. Every operation is one byte (taken modulo kOpCount) followed by
// its arguments; a script cut short reads zeros. Integers are little-endian.
// Operations go to the current connection; there are two (kSwitch), so that
// one can delete or end what the other uses.
//
//   header   bit 0: say a valid Hello first (on the first connection);
//            bits 1-2: Ending, applied to both connections, the current last
//   name     u8 s: s < 0xF0 a name from the pool; 0xFF a 201-byte name (one
//            too long); else u8 n then n % 32 raw bytes
//   topic    a name from the topic pool: 0 "t.a", 1 "t.b", 2 "t.a.b", 3 "fz",
//            4 "_inbox.x", 5 "t.a.dlq", 6 "t", 7 "Z_9" (s % 8)
//   pattern  a name from the topic pool followed by patterns (s % 16):
//            8 "t.*", 9 "t.>", 10 "*", 11 ">", 12 "*.b", and malformed ones
//            13 "t.*x", 14 "t.>.a", 15 "t..*"
//   sub      a name from the subscription pool: "", "s1", "s2", "s-3" (s % 4)
//   blob     u8 n: n < 0xFF n % 64 raw bytes; 0xFF u16 m then m % 8192 'x's
//   offset   u8 s: s < 0xF0 the value s; 0xFF UINT64_MAX; else a u64
//   consumer u8 s: s < 0xF0 the id s % 6; else a u64
//   start    u8 s: s < 0xF0 StartPosition s % 4 (Latest Earliest Offset
//            Time) with start_offset (s >> 2) % 4 and start_time_ms 0 if
//            (s >> 4) is even, else one second ago; else the raw value s
//
//   kHello       u8 v (v < 0xF0: version 1, else a u32 follows), blob name
//   kPing        u8 request id
//   kPublish     u8 request id, topic, u8 flags (bit 0 confirm, bit 1
//                confirm given explicitly, (flags >> 2) % 5 messages), then
//                per message u8 parts (bit 0 key, bit 1 headers, bit 2
//                payload, bit 3 id, bit 4 ttl), blob key, u8 n (n % 4
//                headers: u8 has-name, blob name, blob value), blob payload,
//                if bit 3: u8 s, s < 0xF0 the id "id-<s % 8>", else a blob;
//                if bit 4: u8 ttl ms (0: 1 ms)
//   kSubscribe   u8 request id, pattern topic, sub, start, u8 prefetch kind
//                (% 4: default, 0, 1 + u8 % 8, u32), u8 t: (t & 3) % 3 the
//                timeout kind (0, 1 + u8 ms, u32), (t >> 2) & 3 max_deliveries
//                (default, 1, 2, 0 = unlimited), (t >> 4) & 3 the dead-letter
//                topic (default, "t.b", the topic itself, "_inbox.x")
//   kUnsubscribe u8 request id, consumer
//   kAck         consumer, u8 n ((n & 7) % 5 ranges of offset first, offset
//                last), then if n bit 3: topic (Ack.topic)
//   kBrokerOnly  u8 which (% 12: HelloOk Pong Error PublishAck SubscribeOk
//                UnsubscribeOk Deliver TopicList ResetOk CreateTopicOk
//                DeleteOk ConsumerClosed)
//   kGarbage     u8 n, n raw bytes, sent behind a correct length prefix
//   kRawBytes    u8 n, n raw bytes sent as they are (a length prefix of
//                their own, or of nothing)
//   kBadUnion    u8 type: a Frame whose union type is that byte and whose
//                body is a Ping table
//   kPause       u8 ms: reads replies (on both connections) for ms % 20 ms
//   kNack        consumer, u8 f ((f & 7) % 5 ranges, bit 3 topic, bit 4
//                dead_letter, (f >> 5) & 3 delay kind: 0, u8 ms, u32 ms,
//                5 ms), the ranges, the delay's argument, then the topic
//   kListTopics  u8 request id, u8 w: bit 0 pattern topic follows (only that
//                topic), else every topic
//   kResetSubscription  u8 request id, topic, sub, start,
//                offset start_offset, u8 t (0: start_time_ms 0; < 0xF0: t
//                * 10 ms ago; else a u64)
//   kCreateTopic u8 request id, topic, u8 flags (bit 0 temporary, bit 1
//                settings given, bit 2 work_queue, bit 3 dead_letter_expired,
//                (flags >> 4) & 3 max_messages: 0, 1, 3, u8; flags >> 6
//                max_bytes: 0, 1, 300, u16), u8 age (% 4 max_age_ms: 0, 1,
//                50, u16), then the u8 / u16 / u16 arguments in that order
//   kAlterTopic  u8 request id, topic, then as kCreateTopic from flags on
//                (bit 0 unused)
//   kDeleteTopic u8 request id, pattern topic
//   kDeleteSubscription  u8 request id, topic, sub
//   kSettleLast  u8 f: settles the messages of the last Deliver received on
//                this connection (its consumer, topic and offsets): bit 0
//                Nack, else Ack; bit 1 dead_letter; bit 2 a 5 ms delay;
//                bit 3 leave the topic out. Nothing if none came yet
//   kSwitch      u8 c: bit 0 the connection the next operations go to (the
//                second one is opened, with a valid Hello, when first used);
//                bit 1: end that connection first (bit 2: with a reset) and
//                open a new one in its place
#pragma once

#include <cstdint>

namespace tern::fuzz::session {

enum Op : uint8_t {
  kHello,
  kPing,
  kPublish,
  kSubscribe,
  kUnsubscribe,
  kAck,
  kBrokerOnly,
  kGarbage,
  kRawBytes,
  kBadUnion,
  kPause,
  kNack,
  kListTopics,
  kResetSubscription,
  kCreateTopic,
  kDeleteTopic,
  kDeleteSubscription,
  kSettleLast,
  kSwitch,
  kAlterTopic,
  kOpCount
};

// Pool indices, for make_seeds.cc (the pools are in session_fuzz.cc).
enum PoolName : uint8_t {
  kTA,
  kTB,
  kTAB,
  kFz,
  kInbox,
  kTADlq,
  kT,
  kZ9,
  kTStar,
  kTGt,
  kStar,
  kGt,
  kStarB,
  kBadStarX,
  kBadGtA,
  kBadEmpty,
};
enum SubName : uint8_t { kEphemeral, kS1, kS2, kS3 };

// How the connection ends once the script has run.
enum Ending : uint8_t {
  kPingAndWait,   // a Ping, then read until its Pong, the close, or silence
  kHalfClose,     // shutdown(SHUT_WR), then read until the close or silence
  kReset,         // close with SO_LINGER 0: the broker sees a reset
  kPingAndWait2,  // as kPingAndWait (keeps the two header bits all meaningful)
};

constexpr uint8_t kSayHello = 1;
inline uint8_t header(bool hello, Ending ending) {
  return static_cast<uint8_t>((hello ? kSayHello : 0) | (ending << 1));
}

}  // namespace tern::fuzz::session
