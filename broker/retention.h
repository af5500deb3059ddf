// Retention: removing a topic's oldest messages as its settings say — by
// count, by age, by total bytes, or (work queue) once every durable
// subscription acked them.
//
// One round, every --retention-interval:
//   loop thread:   plan_retention() turns what the loop knows (offsets,
//                  counters, ack floors) into a RetentionJob;
//   worker thread: find_cut() reads the oldest messages from the store to
//                  find where the cut goes and what it removes — the loop
//                  never reads old records itself;
//   loop thread:   Broker::apply_retention() puts one range delete into the
//                  next group commit, with the topic's new state, and moves
//                  subscriptions past the cut (counted as skipped).
// Range deletes only mark data deleted; the worker later compacts the
// removed range so the disk space really comes back.
#pragma once

#include <cstdint>
#include <optional>

#include "store.h"

namespace tern {

class Topic;

struct RetentionJob {
  uint64_t topic_id = 0;
  uint64_t first = 0;         // the topic's first offset when planned
  uint64_t end = 0;           // committed end: nothing from here is removed
  uint64_t remove_below = 0;  // count and work-queue limits: remove below
  int64_t older_than_ms = 0;  // age limit: remove appended before; 0: none
  uint64_t bytes = 0;         // bytes stored now
  uint64_t max_bytes = 0;     // 0: no limit
};

struct RetentionCut {
  storage::Status status = storage::Status::ok();
  uint64_t first = 0;     // the new first offset
  uint64_t messages = 0;  // removed
  uint64_t bytes = 0;     // removed
};

// What a round must do for `topic` at Unix time `now_ms`; nothing if its
// limits are all kept.
std::optional<RetentionJob> plan_retention(const Topic& topic, int64_t now_ms);

// Worker thread: where the job's cut goes.
RetentionCut find_cut(storage::Store& store, const RetentionJob& job);

}  // namespace tern
