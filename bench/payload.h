// The bench's message payload: who sent it, its place in the sender's
// sequence, and when it was sent, followed by filler up to --size bytes.
//
//   bytes 0..7    send time, steady_clock nanoseconds (producer and consumer
//                 share the process, hence the clock)
//   bytes 8..11   producer id
//   bytes 12..19  sequence number within that producer, from 0
//   bytes 20..23  kMagic, so a stray message is recognised, not miscounted
//
// Fields are stored in host byte order: the same process reads them.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

namespace tern::bench {

constexpr size_t kHeaderBytes = 24;
constexpr uint32_t kMagic = 0x42726554;  // "TerB"

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct PayloadHeader {
  int64_t send_ns = 0;
  uint32_t producer = 0;
  uint64_t sequence = 0;
};

// Overwrites the first kHeaderBytes of `payload`, which must be that long.
inline void write_header(const PayloadHeader& h, std::string* payload) {
  char* p = payload->data();
  std::memcpy(p, &h.send_ns, 8);
  std::memcpy(p + 8, &h.producer, 4);
  std::memcpy(p + 12, &h.sequence, 8);
  std::memcpy(p + 20, &kMagic, 4);
}

// False if `payload` is not a bench payload.
inline bool read_header(const std::string& payload, PayloadHeader* h) {
  if (payload.size() < kHeaderBytes) return false;
  const char* p = payload.data();
  uint32_t magic;
  std::memcpy(&magic, p + 20, 4);
  if (magic != kMagic) return false;
  std::memcpy(&h->send_ns, p, 8);
  std::memcpy(&h->producer, p + 8, 4);
  std::memcpy(&h->sequence, p + 12, 8);
  return true;
}

}  // namespace tern::bench
