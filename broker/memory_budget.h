// MemoryBudget: one limit (--memory-budget) on what the broker holds in
// memory for messages, whatever the number of topics and connections:
//   - the in-memory tails of all topics and the stretches read back from the
//     store for consumers behind them ("cached": a copy of what the store
//     holds, so it can always be given back), and
//   - the frames queued for clients and being written ("output": it can only
//     be given back by closing a connection).
//
// Output:
//   - Past half the budget, deliveries pause on every connection that still
//     has output waiting: a consumer that stops reading keeps what it has
//     and gets nothing more. One that has drained everything may still take
//     a frame up to three quarters of the budget, so consumers that read
//     keep flowing while others are stuck.
//   - Past five eighths, the connections with the most output waiting (slow
//     readers) are closed until output is back under it (shed(), after each
//     loop iteration's writes): their unacked messages go to other
//     consumers, and readers keep their eighth of room.
//   - Replies (confirms, errors) pile up only for a client that sends
//     requests and does not read: past half the budget, one with
//     kReplyAllowance waiting is closed (Connection::send).
//
// Cached bytes get what output leaves. When the sum is over the budget the
// coldest topics — least recently appended to or read from — give theirs
// back first (trim(), at the start of each Broker::after_io, when no record
// pointer is held). A topic without a tail serves its consumers from the
// store, as a replay does.
//
// Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>

namespace tern {

class Connection;
class Topic;

class MemoryBudget {
 public:
  // A connection that sends requests but does not read may have this much
  // waiting after output passed half the budget, then it is closed.
  static constexpr size_t kReplyAllowance = 1u << 20;
  // Only connections with at least this much waiting are closed by shed():
  // a consumer that reads has less, its last write being done.
  static constexpr size_t kSlowReader = 64u << 10;

  // Where a topic or connection is in the budget's lists.
  using TopicPlace = std::list<Topic*>::iterator;
  using ConnectionPlace = std::list<Connection*>::iterator;

  explicit MemoryBudget(size_t limit) : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  size_t limit() const { return limit_; }
  size_t cached() const { return cached_; }
  size_t output() const { return output_; }

  // --- topics (Topic calls these) ---
  TopicPlace enter(Topic& topic);
  // The topic goes away, with the `held` bytes it still counted.
  void leave(TopicPlace place, size_t held);
  // The topic was appended to or read from: it is the hottest now.
  void touch(TopicPlace place) {
    if (place != topics_.begin())
      topics_.splice(topics_.begin(), topics_, place);
  }
  void hold(size_t bytes) { cached_ += bytes; }
  void release(size_t bytes) { cached_ -= bytes; }
  // Has the coldest topics give back cached bytes until cached + output is
  // within the budget (as far as records not yet durable allow).
  void trim();

  // --- output (Connection calls these) ---
  ConnectionPlace enter(Connection& connection);
  void leave(ConnectionPlace place) { connections_.erase(place); }
  void add_output(size_t bytes) { output_ += bytes; }
  void remove_output(size_t bytes) { output_ -= bytes; }
  // Whether a delivery of `extra` bytes must wait on a connection that has
  // `waiting` bytes queued or being written.
  bool delivery_must_wait(size_t waiting, size_t extra) const {
    return output_ + extra > limit_ / 4 * 3 ||
           (waiting > 0 && output_ + extra > limit_ / 2);
  }
  // Whether queuing a reply of `extra` bytes on such a connection would grow
  // the broker too far: the connection is closed instead.
  bool reply_overflows(size_t waiting, size_t extra) const {
    return waiting >= kReplyAllowance && output_ + extra > limit_ / 2;
  }
  // Closes the slowest readers while output is past five eighths.
  void shed();

 private:
  const size_t limit_;
  size_t cached_ = 0;
  size_t output_ = 0;
  std::list<Topic*> topics_;  // hottest first
  std::list<Connection*> connections_;
  int64_t last_report_ms_ = 0;   // of trim()'s log line
  int64_t last_release_ms_ = 0;  // of trim()'s malloc_trim()
};

}  // namespace tern
