#include "delivery_check.h"

#include <algorithm>

namespace tern::bench {

DeliveryCheck::DeliveryCheck(std::string name, int topic_index, int topics,
                             int producers, uint64_t max_sequence)
    : name_(std::move(name)),
      topic_index_(topic_index),
      topics_(topics),
      producers_(producers),
      max_sequence_(max_sequence),
      seen_(size_t((producers - topic_index + topics - 1) / topics)) {}

bool DeliveryCheck::feeds_me(uint32_t producer) const {
  return producer < uint32_t(producers_) &&
         int(producer % uint32_t(topics_)) == topic_index_;
}

DeliveryCheck::Outcome DeliveryCheck::record(uint32_t producer,
                                             uint64_t sequence,
                                             uint32_t attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!feeds_me(producer) || sequence >= max_sequence_) {
    ++foreign_;
    return Outcome::kForeign;
  }
  std::vector<uint64_t>& bits = seen_[producer / uint32_t(topics_)];
  size_t word = size_t(sequence / 64);
  if (word >= bits.size()) {
    // Grow geometrically: sequence numbers arrive roughly in order.
    bits.resize(std::max(word + 1, bits.size() + bits.size() / 2), 0);
  }
  uint64_t mask = uint64_t(1) << (sequence % 64);
  bool seen_before = (bits[word] & mask) != 0;
  bits[word] |= mask;
  if (attempt > 1) ++redelivered_;
  if (!seen_before) {
    unique_.fetch_add(1, std::memory_order_relaxed);
    return Outcome::kFirst;
  }
  if (attempt > 1) return Outcome::kRedelivery;
  ++duplicates_;
  return Outcome::kDuplicate;
}

uint64_t DeliveryCheck::duplicates() const {
  std::lock_guard<std::mutex> lock(mu_);
  return duplicates_;
}

uint64_t DeliveryCheck::redelivered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return redelivered_;
}

uint64_t DeliveryCheck::foreign() const {
  std::lock_guard<std::mutex> lock(mu_);
  return foreign_;
}

uint64_t DeliveryCheck::expected(
    const std::vector<uint64_t>& sent_by_producer) const {
  uint64_t n = 0;
  for (size_t p = size_t(topic_index_); p < sent_by_producer.size();
       p += size_t(topics_)) {
    n += sent_by_producer[p];
  }
  return n;
}

uint64_t DeliveryCheck::lost(const std::vector<uint64_t>& sent_by_producer,
                             size_t max_examples,
                             std::vector<std::string>* examples) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t lost = 0;
  for (size_t p = size_t(topic_index_); p < sent_by_producer.size();
       p += size_t(topics_)) {
    const std::vector<uint64_t>& bits = seen_[p / size_t(topics_)];
    for (uint64_t seq = 0; seq < sent_by_producer[p]; ++seq) {
      size_t word = size_t(seq / 64);
      bool seen = word < bits.size() && (bits[word] >> (seq % 64)) & 1;
      if (seen) continue;
      ++lost;
      if (examples->size() < max_examples) {
        examples->push_back(std::to_string(p) + "/" + std::to_string(seq));
      }
    }
  }
  return lost;
}

}  // namespace tern::bench
