// DeliveryCheck: what one subscription received, to find lost and duplicate
// messages.
//
// For every producer publishing to the subscription's topic it keeps a bitmap
// of the sequence numbers seen. A message seen again with attempt 1 is a
// duplicate (the broker sent it twice as new); one with attempt > 1 is a
// redelivery, which at-least-once delivery allows and which is only counted.
// Once the run is over, every sequence number a producer had confirmed and the
// bitmap lacks is a lost message.
//
// The consumers sharing the subscription record into it from their own
// threads, under one mutex: a few tens of nanoseconds per message, small next
// to the rest of a delivery's path, and it keeps growing the bitmaps simple.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace tern::bench {

class DeliveryCheck {
 public:
  // The subscription on topic `topic_index` of `topics`, fed by producers
  // topic_index, topic_index + topics, ... up to `producers`, each sending
  // sequence numbers below `max_sequence` (a guard against corrupt payloads
  // growing a bitmap without bound).
  DeliveryCheck(std::string name, int topic_index, int topics, int producers,
                uint64_t max_sequence);

  enum class Outcome { kFirst, kDuplicate, kRedelivery, kForeign };
  // kForeign: a producer id or sequence number this subscription cannot have
  // been sent; nothing is recorded.
  Outcome record(uint32_t producer, uint64_t sequence, uint32_t attempt);

  const std::string& name() const { return name_; }
  // Distinct messages seen so far. Any thread.
  uint64_t unique() const { return unique_.load(std::memory_order_relaxed); }
  uint64_t duplicates() const;
  uint64_t redelivered() const;
  uint64_t foreign() const;

  // After the run. `sent_by_producer[p]` is how many messages producer p
  // published (sequence numbers 0..n-1); only the producers of this topic are
  // looked at. Returns how many of them were never seen and puts up to
  // `max_examples` of them, as "producer/sequence", in *examples.
  uint64_t lost(const std::vector<uint64_t>& sent_by_producer,
                size_t max_examples, std::vector<std::string>* examples) const;

  // Messages this subscription should receive, given what was published.
  uint64_t expected(const std::vector<uint64_t>& sent_by_producer) const;

 private:
  bool feeds_me(uint32_t producer) const;

  const std::string name_;
  const int topic_index_;
  const int topics_;
  const int producers_;
  const uint64_t max_sequence_;

  mutable std::mutex mu_;
  // Indexed by producer / topics_, then by sequence / 64.
  std::vector<std::vector<uint64_t>> seen_;
  uint64_t duplicates_ = 0;
  uint64_t redelivered_ = 0;
  uint64_t foreign_ = 0;
  std::atomic<uint64_t> unique_{0};
};

}  // namespace tern::bench
