// Subscription: a cursor on one topic and the consumers sharing it.
//
// Its state, all owned here:
//   acks_        what is acknowledged (floor + ranges; persisted when durable)
//   next_offset_ the first offset never handed to a consumer
//   pending_     delivered, not yet acked: who has it, which attempt
//   redeliver_   taken back (consumer gone, ack timeout, nack), waiting to go
//                again; delayed_ holds those nacked with a delay until due
// dispatch() hands messages to consumers with credit, redeliveries first, one
// message per consumer in turn so that competing consumers share the load.
// A message about to be delivered more than max_deliveries times, or nacked
// for good, goes to the dead-letter topic instead and counts as done, so a
// poison message cannot hold up the others.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ack_set.h"
#include "log.h"
#include "tern_generated.h"

namespace tern {

class Topic;
class Subscription;
struct Consumer;

struct SubscriptionSettings {
  uint32_t ack_timeout_ms = 30000;
  uint32_t max_deliveries = 16;   // 0: unlimited
  std::string dead_letter_topic;  // a topic name
  // The wait before delivery n+1 when delivery n failed (ack timeout, or a
  // nack without a delay): entry n-1, the last one repeating. Not empty.
  std::vector<uint32_t> retry_delays_ms{0};
};

// Where a subscription sends the messages it gives up on: the broker.
class DeadLetters {
 public:
  // Publishes `message` (at `offset`, delivered `attempts` times) to the
  // subscription's dead-letter topic, and persists that it is done. False
  // and *error if that is not possible now (the subscription then holds the
  // message back and tries again later).
  virtual bool dead_letter(Subscription& from, uint64_t offset,
                           uint32_t attempts,
                           const wire::StoredMessage& message,
                           const char* reason, std::string* error) = 0;

 protected:
  ~DeadLetters() = default;
};

class Subscription {
 public:
  // `name` empty: ephemeral. Delivery starts at `start` (skipping acks).
  Subscription(Topic& topic, std::string name, SubscriptionSettings settings,
               AckSet acks, uint64_t start, DeadLetters& dead_letters);

  Topic& topic() const { return topic_; }
  const std::string& name() const { return name_; }
  bool durable() const { return !name_.empty(); }
  const SubscriptionSettings& settings() const { return settings_; }
  void set_settings(SubscriptionSettings settings) {
    settings_ = std::move(settings);
  }
  const AckSet& acks() const { return acks_; }
  bool has_consumers() const { return !consumers_.empty(); }
  size_t consumer_count() const { return consumers_.size(); }
  const std::vector<Consumer*>& consumers() const { return consumers_; }
  size_t pending_count() const { return pending_.size(); }
  // Taken back, to be delivered again (those in give_up_ are not: they go
  // to the dead-letter topic; give_up_ holds only offsets of redeliver_).
  size_t waiting_count() const {
    return redeliver_.size() + delayed_.size() - give_up_.size();
  }
  // Messages to be dead-lettered that could not be (the dead-letter topic
  // cannot be created now), and why. They are tried again every second and
  // never handed to a consumer meanwhile.
  size_t dead_letter_blocked() const { return blocked_.size(); }
  const std::string& dead_letter_error() const { return dead_letter_error_; }
  // Messages retention removed before this subscription acked them.
  uint64_t skipped() const { return skipped_; }
  // Committed messages of the topic not acked yet.
  uint64_t lag() const;

  // Since the broker started (for metrics): messages handed to consumers
  // (redelivered: the ones that had been handed out before), settled by an
  // ack, taken back by a nack, and moved to the dead-letter topic.
  struct Counters {
    uint64_t delivered = 0;
    uint64_t redelivered = 0;
    uint64_t acked = 0;
    uint64_t nacked = 0;
    uint64_t dead_lettered = 0;
    uint64_t expired = 0;  // time to live ended before it was handed out
  };
  const Counters& counters() const { return counters_; }

  void add_consumer(Consumer& consumer);
  // Takes back everything the consumer had not acked, for redelivery.
  void remove_consumer(Consumer& consumer);

  // Applies `consumer`'s ack of [first, last].
  void ack(Consumer& consumer, uint64_t first, uint64_t last);
  // Whether `consumer` holds every offset of [first, last] (delivered to it,
  // not settled, not taken back).
  bool holds(const Consumer& consumer, uint64_t first, uint64_t last) const {
    return last >= first &&
           held_by(consumer, first, last).size() == last - first + 1;
  }
  // Acks what `consumer` holds of [first, last]. For a commit that may
  // fail, `acked` (if given) gets each offset with its delivery's attempt,
  // for take_back().
  void ack_held(Consumer& consumer, uint64_t first, uint64_t last,
                std::vector<std::pair<uint64_t, uint32_t>>* acked);
  // The commit that settled `offset` after `attempts` deliveries failed: it
  // is not done. Acked (`give_up_reason` null): it is delivered again;
  // dead-lettered: it is given up on again, for that reason, when next
  // handed out.
  void take_back(uint64_t offset, uint32_t attempts,
                 const char* give_up_reason);
  // Applies `consumer`'s nack of [first, last]: redeliver after `delay_ms`
  // (0: at once), or with `dead_letter` give up on them now.
  void nack(Consumer& consumer, uint64_t first, uint64_t last,
            uint32_t delay_ms, bool dead_letter, uint64_t now_ms);

  // Hands out what it can; the Deliver frames are queued on the consumers'
  // connections. `now_ms` is loop time, for ack deadlines; messages whose
  // time to live ended by `wall_ms` (Unix ms) are skipped and count as done.
  void dispatch(uint64_t now_ms, int64_t wall_ms);

  // Starts over at `start`: everything below counts as acked, everything
  // from it on as never delivered; deliveries out now are forgotten. Ends a
  // hold.
  void reset(uint64_t start);

  // While a start position is looked up (Broker::move_to_start), the
  // subscription hands out nothing; `lookup` names the lookup, so that one
  // overtaken by a later reset finds the hold gone. 0: not held.
  void hold(uint64_t lookup) { held_for_ = lookup; }
  uint64_t held_for() const { return held_for_; }

  // Retention removed the topic's messages below `first`: what of them was
  // not acked is skipped (counted in skipped()), deliveries of them out now
  // are forgotten.
  void skip_before(uint64_t first);

  // Redeliveries (attempt counts above 1, delayed nacks) as stored, so they
  // survive a restart; `now_ms` is loop time, `wall_ms` Unix time.
  std::vector<storage::Redelivery> redeliveries(uint64_t now_ms,
                                                int64_t wall_ms) const;
  // Takes back the redeliveries and skipped() count stored before a restart.
  void restore(const std::vector<storage::Redelivery>& redeliveries,
               uint64_t skipped, uint64_t now_ms, int64_t wall_ms);
  // True once after anything that is stored changed (acks, redeliveries):
  // the owner then writes the cursor. The one signal for every path.
  bool take_cursor_changed() { return std::exchange(cursor_changed_, false); }

  // Takes back deliveries whose ack timeout passed, and releases nacked ones
  // whose delay passed. Returns true if any.
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
  bool next_message(uint64_t now_ms, int64_t wall_ms, uint64_t* offset,
                    uint32_t* attempt, const wire::StoredMessage** message);
  // The offsets in [first, last] pending with `consumer`, in order.
  std::vector<uint64_t> held_by(const Consumer& consumer, uint64_t first,
                                uint64_t last) const;
  void mark_acked(uint64_t first, uint64_t last);
  // A log event about the message at `offset`, with its trace id.
  void log_message(LogLevel level, const char* event, uint64_t offset,
                   const wire::StoredMessage& message,
                   const std::string& what) const;
  // A message whose time to live ended: done, or dead-lettered if its topic
  // asks for that.
  void expire_message(uint64_t offset, uint32_t attempts,
                      const wire::StoredMessage& message, uint64_t now_ms);
  // The wait before redelivering after delivery `attempt` failed.
  uint32_t backoff_ms(uint32_t attempt) const;
  // Delivery `attempts` of `offset` failed: delivered again after
  // `delay_ms` (0: as soon as there is credit).
  void retry(uint64_t offset, uint32_t attempts, uint32_t delay_ms,
             uint64_t now_ms);
  // Dead-letters a message (it then counts as acked).
  void give_up(uint64_t offset, uint32_t attempts,
               const wire::StoredMessage& message, const char* reason,
               uint64_t now_ms);
  void flush(Consumer& consumer);

  Topic& topic_;
  const std::string name_;
  SubscriptionSettings settings_;
  DeadLetters& dead_letters_;
  AckSet acks_;
  uint64_t next_offset_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::map<uint64_t, uint32_t> redeliver_;  // offset -> attempts so far
  // In redeliver_, to be dead-lettered when next handed out: offset -> why
  // (a tern-dlq-reason).
  std::map<uint64_t, const char*> give_up_;
  // Dead-lettering failed: offset -> (attempts, why), back into redeliver_
  // and give_up_ at blocked_retry_ms_ (loop time).
  std::map<uint64_t, std::pair<uint32_t, const char*>> blocked_;
  uint64_t blocked_retry_ms_ = 0;
  std::string dead_letter_error_;  // the last failure; empty once one worked
  // Nacked with a delay: due time (loop ms) -> (offset, attempts so far).
  std::multimap<uint64_t, std::pair<uint64_t, uint32_t>> delayed_;
  // Ack deadlines in delivery order. The timeout is the same for every
  // delivery, so this is sorted by time; entries whose delivery was acked or
  // redelivered meanwhile are skipped when they reach the front.
  std::deque<Deadline> deadlines_;
  std::vector<Consumer*> consumers_;
  size_t next_consumer_ = 0;  // round-robin position
  std::vector<Consumer*> touched_;  // dispatch()'s scratch, kept to reuse
  // Restored from the store: deliveries so far of offsets not yet handed
  // out again, and offsets waiting in delayed_ that the first pass over the
  // topic must skip.
  std::map<uint64_t, uint32_t> prior_attempts_;
  std::set<uint64_t> held_back_;
  bool cursor_changed_ = false;
  uint64_t skipped_ = 0;
  uint64_t held_for_ = 0;
  Counters counters_;
};

}  // namespace tern
