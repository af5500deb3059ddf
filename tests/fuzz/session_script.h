// The little language session_fuzz inputs are written in, shared by the target
// (which reads it) and make_seeds.cc (which writes the seed corpus in it).
//
// An input is a script: one header byte, then operations until the input
// runs out. Every operation is one byte (taken modulo kOpCount) followed by
// its arguments; a script cut short reads zeros. Integers are little-endian.
//
//   header   bit 0: say a valid Hello first; bits 1-2: Ending
//   name     u8 s: s < 0xF0 a name from the pool; 0xFF a 201-byte name (one
//            too long); else u8 n then n % 32 raw bytes
//   blob     u8 n: n < 0xFF n % 64 raw bytes; 0xFF u16 m then m % 8192 'x's
//   offset   u8 s: s < 0xF0 the value s; 0xFF UINT64_MAX; else a u64
//   consumer u8 s: s < 0xF0 the id s % 6; else a u64
//
//   kHello       u8 v (v < 0xF0: version 1, else a u32 follows), blob name
//   kPing        u8 request id
//   kPublish     u8 request id, name topic, u8 flags (bit 0 confirm, bit 1
//                confirm given explicitly, (flags >> 2) % 5 messages), then
//                per message u8 parts (bit 0 key, bit 1 headers, bit 2
//                payload, bit 3 id), blob key, u8 n (n % 4 headers: u8
//                has-name, blob name, blob value), blob payload, and if bit 3:
//                u8 s, s < 0xF0 the id "id-<s % 8>", else a blob
//   kSubscribe   u8 request id, name topic, name subscription (pool of
//                subscription names, "" among them), u8 start (< 0xF0: % 2,
//                else the raw value), u8 prefetch kind (% 4: default, 0,
//                1 + u8 % 8, u32), u8 timeout kind (% 3: 0, 1 + u8 ms, u32)
//   kUnsubscribe u8 request id, consumer
//   kAck         consumer, u8 n (n % 5 ranges of offset first, offset last)
//   kBrokerOnly  u8 which (% 7: HelloOk Pong Error PublishAck SubscribeOk
//                UnsubscribeOk Deliver)
//   kGarbage     u8 n, n raw bytes, sent behind a correct length prefix
//   kRawBytes    u8 n, n raw bytes sent as they are (a length prefix of
//                their own, or of nothing)
//   kBadUnion    u8 type: a Frame whose union type is that byte and whose
//                body is a Ping table
//   kPause       u8 ms: reads replies for ms % 20 ms before going on
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
  kOpCount
};

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
