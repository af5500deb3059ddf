// Subscription: a cursor on one topic and the consumers sharing it.
//
// Its state, all owned here:
//   acks_        what is acknowledged (floor + ranges; persisted when durable)
//   next_offset_ the first offset never handed to a consumer
//   pending_     delivered, not yet acked: who has it, which attempt
//   redeliver_   taken back (consumer gone, ack timeout), waiting to go again
// dispatch() hands messages to consumers with credit, redeliveries first, one
// message per consumer in turn so that competing consumers share the load.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ack_set.h"
#include "tern_generated.h"

namespace tern {

class Topic;
struct Consumer;

class Subscription {
 public:
  // `name` empty: ephemeral. Delivery starts at `start` (skipping acks).
  Subscription(Topic& topic, std::string name, uint32_t ack_timeout_ms,
               AckSet acks, uint64_t start);

  Topic& topic() const { return topic_; }
  const std::string& name() const { return name_; }
  bool durable() const { return !name_.empty(); }
  uint32_t ack_timeout_ms() const { return ack_timeout_ms_; }
  void set_ack_timeout_ms(uint32_t ms) { ack_timeout_ms_ = ms; }
  const AckSet& acks() const { return acks_; }
  bool has_consumers() const { return !consumers_.empty(); }

  void add_consumer(Consumer& consumer);
  // Takes back everything the consumer had not acked, for redelivery.
  void remove_consumer(Consumer& consumer);

  // Applies `consumer`'s ack of [first, last]. Returns true if the ack state
  // changed.
  bool ack(Consumer& consumer, uint64_t first, uint64_t last);

  // Hands out what it can; the Deliver frames are queued on the consumers'
  // connections. `now_ms` is loop time, for ack deadlines.
  void dispatch(uint64_t now_ms);

  // Takes back deliveries whose ack timeout passed. Returns true if any.
  bool expire(uint64_t now_ms);

 private:
  struct Pending {
    Consumer* consumer;
    uint32_t attempt;
  };
  struct Deadline {
    uint64_t at_ms;
    uint64_t offset;
    uint32_t attempt;
  };
  Consumer* next_consumer_with_credit();
  bool next_message(uint64_t* offset, uint32_t* attempt,
                    const wire::StoredMessage** message);
  void flush(Consumer& consumer);

  Topic& topic_;
  const std::string name_;
  uint32_t ack_timeout_ms_;
  AckSet acks_;
  uint64_t next_offset_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::map<uint64_t, uint32_t> redeliver_;  // offset -> attempts so far
  // Ack deadlines in delivery order. The timeout is the same for every
  // delivery, so this is sorted by time; entries whose delivery was acked or
  // redelivered meanwhile are skipped when they reach the front.
  std::deque<Deadline> deadlines_;
  std::vector<Consumer*> consumers_;
  size_t next_consumer_ = 0;  // round-robin position
};

}  // namespace tern
