// Topic: one named, append-only log as the loop thread sees it — the offsets
// it has handed out, how far they are durable, the subscriptions on it, and a
// bounded in-memory tail of recent records.
//
// The tail is why consumers that keep up never touch RocksDB: a record stays
// in memory from its append until the tail's byte limit (--tail-bytes) or the
// broker's memory budget (memory_budget.h: the coldest topics give back
// first) pushes it out, and it only leaves once it is durable. Records older
// than the tail are read back from the store in stretches, on the broker's
// reader thread: the loop thread asks, goes on serving everyone else, and
// dispatches the subscription again when the stretch has arrived. A few recent
// stretches are kept, so subscriptions replaying the same range share them.
#pragma once

#include <climits>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "memory_budget.h"
#include "producer_sequences.h"
#include "store.h"
#include "subscription.h"
#include "tern_generated.h"

namespace tern {

class Topic;

// Who reads records behind the tail for a topic: the broker, on its reader
// thread. It hands the result back with Topic::on_read_back() and dispatches
// the topic's subscriptions.
class ReadBackSource {
 public:
  virtual void read_back(Topic& topic, uint64_t from) = 0;

 protected:
  ~ReadBackSource() = default;
};

class Topic {
 public:
  // One read-back fetches at most this much.
  static constexpr size_t kReadBackMessages = 512;
  static constexpr size_t kReadBackBytes = 1u << 20;

  // `store` answers disk_bytes(); `reader` reads behind the tail; what the
  // tail and the stretches read back hold counts against `memory`.
  Topic(storage::Store& store, ReadBackSource& reader, MemoryBudget& memory,
        const storage::TopicRecord& record, size_t tail_limit_bytes);
  ~Topic();
  Topic(const Topic&) = delete;
  Topic& operator=(const Topic&) = delete;

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  const storage::TopicSettings& settings() const { return settings_; }
  void set_settings(const storage::TopicSettings& settings) {
    settings_ = settings;
  }
  // What the topic holds, as stored with each batch that changes it.
  storage::TopicState state() const {
    return {first_offset_,
            next_offset_,
            messages_,
            bytes_,
            schedule_.count - schedule_.moving,
            schedule_.next_ticket};
  }
  uint64_t first_offset() const { return first_offset_; }
  // What the topic's messages take on disk and in memtables, as RocksDB
  // estimates it: removed messages count until compaction drops them.
  uint64_t disk_bytes() const { return store_.disk_bytes(id_); }
  // Offsets below committed_end() are durable and may be delivered.
  uint64_t committed_end() const { return committed_end_; }
  uint64_t next_offset() const { return next_offset_; }

  // Takes a record (not yet durable) and returns its offset. The tail keeps
  // the builder's buffer itself: the record is not copied again.
  uint64_t append(flatbuffers::DetachedBuffer record);
  // The commit holding offsets [first, end) returned. If it failed those
  // records are not stored and are never delivered: their offsets stay unused.
  void on_committed(uint64_t first, uint64_t end, bool ok);

  // Retention removed the offsets below `first`, `messages` messages of
  // `bytes` bytes. Their subscriptions move past them.
  void remove_before(uint64_t first, uint64_t messages, uint64_t bytes);

  // The durable message at `offset` or the next one after it (a failed
  // commit or a damaged record leaves gaps), as long as it is below
  // committed_end(). Moves *offset to the message found. Returns nullptr if
  // there is none, or none yet: *reading then says it is being read back
  // from the store, and the topic's subscriptions are dispatched again once
  // it is here. The pointer is valid until the next call that changes the
  // topic.
  const wire::StoredMessage* record_at_or_after(uint64_t* offset,
                                                bool* reading);
  // Reader thread's result for read_back(*this, from): `records` were stored
  // from `from` on; `committed_end` is what committed_end() was when asked.
  void on_read_back(uint64_t from, uint64_t committed_end,
                    std::vector<storage::StoredMessage> records);
  // The read from `from` failed: the next call for it asks again.
  void on_read_failed(uint64_t from) { reading_.erase(from); }

  // Since the broker started (for metrics): messages appended and their
  // record bytes.
  uint64_t appended_messages() const { return appended_messages_; }
  uint64_t appended_bytes() const { return appended_bytes_; }
  // Since the broker started: messages and bytes retention removed.
  uint64_t removed_messages() const { return removed_messages_; }
  uint64_t removed_bytes() const { return removed_bytes_; }

  // Bytes of records held in memory: the tail and the stretches read back.
  size_t memory_bytes() const { return tail_bytes_ + read_back_bytes_; }
  // The memory budget wants `wanted` bytes back: drops stretches read back,
  // then durable records from the front of the tail, until that much is
  // freed or nothing more may go. Returns the bytes freed. Not while a
  // pointer from record_at_or_after() is in use (MemoryBudget::trim()).
  size_t give_back(size_t wanted);

  // Where a subscription starting at `position` begins: Latest, Earliest,
  // or Offset (`offset` clamped to what is stored). Not for Time, which
  // needs the store (Broker::move_to_start).
  uint64_t resolve_start(wire::StartPosition position, uint64_t offset) const;

  // --- scheduled messages: stored apart (store.h, "W") until due, then
  // appended like any publish by the broker (scheduled.cc). The topic keeps
  // what is known of them; the messages themselves stay in the store.
  struct Schedule {
    // Stored, not yet appended; those of a move in flight included until it
    // commits (what topics info shows). The state written with a batch
    // leaves them out: it is what the store holds if that batch commits.
    uint64_t count = 0;
    uint64_t next_ticket = 0;  // for the next one scheduled
    // When the first committed entry falls due, as far as known; INT64_MAX:
    // none. While a move is in flight, only what was scheduled meanwhile.
    int64_t next_due_ms = INT64_MAX;
    // Entries before (from_due_ms, from_ticket) were appended: moves read
    // from here, past the tombstones they left.
    int64_t from_due_ms = 0;
    uint64_t from_ticket = 0;
    uint64_t moving = 0;  // entries the move in flight appends (0: none)
  };
  Schedule& schedule() { return schedule_; }
  const Schedule& schedule() const { return schedule_; }

  // --- de-duplication of producer message ids ---
  // The offset `id` was appended at, if that was within its window.
  bool find_id(const std::string& id, int64_t now_ms, uint64_t* offset) const;
  void remember_id(const std::string& id, uint64_t offset, int64_t expires_ms);
  void forget_id(const std::string& id);
  // Ids and sequence runs held: what --max-dedupe-ids counts.
  size_t dedupe_entries() const { return ids_.size() + sequences_.runs(); }
  // Forgets the ids whose window ended by `now_ms` and returns them.
  std::vector<std::string> expire_ids(int64_t now_ms);
  // De-duplication by producer and sequence (Publish.producer).
  ProducerSequences& sequences() { return sequences_; }

  Subscription* find_subscription(const std::string& name);
  Subscription& add_subscription(std::unique_ptr<Subscription> subscription);
  void remove_subscription(Subscription& subscription);
  const std::vector<std::unique_ptr<Subscription>>& subscriptions() const {
    return subscriptions_;
  }

 private:
  struct TailEntry {
    uint64_t offset;
    flatbuffers::DetachedBuffer record;  // empty: the commit failed
  };
  void trim_tail();
  // Drops the oldest record of the tail, which must be durable.
  void pop_tail();
  // Drops the oldest stretch read back.
  void pop_stretch();

  uint64_t id_;
  std::string name_;
  storage::TopicSettings settings_;
  uint64_t messages_;
  uint64_t bytes_;
  uint64_t appended_messages_ = 0;
  uint64_t appended_bytes_ = 0;
  uint64_t removed_messages_ = 0;
  uint64_t removed_bytes_ = 0;
  uint64_t first_offset_;
  uint64_t committed_end_;
  uint64_t next_offset_;
  std::deque<TailEntry> tail_;  // contiguous offsets ending at next_offset_
  size_t tail_bytes_ = 0;
  size_t tail_limit_bytes_;
  std::vector<std::unique_ptr<Subscription>> subscriptions_;
  Schedule schedule_;

  struct SeenId {
    uint64_t offset;
    int64_t expires_ms;
  };
  std::unordered_map<std::string, SeenId> ids_;
  // (expiry, id) in the order remembered. The window is one setting, so this
  // is in expiry order; an entry whose id was remembered again since is
  // skipped when it reaches the front.
  std::deque<std::pair<int64_t, std::string>> id_expiry_;
  ProducerSequences sequences_;

  // Records read back from the store for consumers behind the tail: each
  // stretch covers [from, end) — every stored record in that range.
  struct Stretch {
    uint64_t end;
    std::vector<storage::StoredMessage> records;
  };
  storage::Store& store_;
  ReadBackSource& reader_;
  MemoryBudget& memory_;
  const MemoryBudget::TopicPlace memory_place_;
  std::map<uint64_t, Stretch> read_back_;  // by from
  std::deque<uint64_t> read_back_order_;   // oldest first, for eviction
  size_t read_back_bytes_ = 0;             // their records' bytes
  std::set<uint64_t> reading_;             // froms asked for, not yet here
  // The stretch read back that covers `offset`, or read_back_.end().
  std::map<uint64_t, Stretch>::const_iterator stretch_covering(
      uint64_t offset) const;
  // Has the reader read from `from`, unless a read in flight likely covers it.
  void ask_for(uint64_t from);
};

}  // namespace tern
