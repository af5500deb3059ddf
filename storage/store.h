// Store: Tern's durable log on RocksDB.
//
// What is kept, and where:
//   column family "messages":  key = topic id (8 bytes BE) | offset (8 bytes
//   BE)
//                              value = one record (see record.h)
//   column family "default":   metadata
//     "F"                         -> "tern-store-1"   (marks a Tern store)
//     "T" | topic id (8 BE)       -> topic name
//     "C" | topic id (8 BE)       -> topic settings (retention, flags)
//     "N" | topic id (8 BE)       -> topic state: first and next offset,
//                                    messages and bytes stored
//     "S" | topic id (8 BE) | name -> subscription record (ack timeout, cursor)
//     "P" | topic id (8 BE) | name -> its delivery settings (max deliveries,
//                                    dead-letter topic)
//     "D" | topic id (8 BE) | producer message id
//                                 -> offset (8 LE) | expires, Unix ms (8 LE)
//     "Q" | topic id (8 BE) | producer (8 BE) | first sequence (8 BE)
//                                 -> a run of producer sequences
//     "W" | topic id (8 BE) | due, Unix ms (8 BE) | ticket (8 BE)
//                                 -> record of a scheduled message, moved
//                                    into the topic when due
// Big-endian keys make each topic one contiguous, ordered key range, so reads
// are a single iterator and retention can be a single DeleteRange.
//
// Threads: the broker's storage thread is the only caller of commit(); read()
// and the load_*() calls are safe from any thread (RocksDB is thread-safe).
// Writes are only ever group commits: the broker collects everything that
// arrived in one loop iteration into a Batch and commits it with one call,
// which with sync=true costs one fsync of the WAL for all of it.
//
// Faults: a failed flush, compaction, or WAL write or sync makes RocksDB
// refuse writes (a "background error"). From then on failed() is true and
// commit() fails at once with the reason, while reads go on as before;
// resume() asks RocksDB to recover (DB::Resume) and, once it does, commits
// work again without reopening. A commit whose WAL write or sync failed
// reports the failure: it is never taken as committed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <rocksdb/write_batch.h>

#include "status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
class FileSystem;
}  // namespace rocksdb

namespace tern::storage {

struct Options {
  std::string path;   // data directory
  bool sync = true;   // fsync the WAL before commit() returns
  // commit() refuses to write while the data directory's file system has
  // less free space than this. RocksDB must never meet a full disk itself:
  // it needs room to flush and compact, and the Debian build aborts on some
  // write errors. 0 disables the check.
  uint64_t min_free_bytes = 0;
  // The file system RocksDB works on; null: the operating system's. Only
  // tests set it, to inject faults and simulate power cuts (tests/fault_fs.h).
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

// How long a topic keeps its messages and what it does with expired ones.
// 0 / false: no limit.
struct TopicSettings {
  uint64_t max_age_ms = 0;
  uint64_t max_bytes = 0;     // of stored records
  uint64_t max_messages = 0;
  bool work_queue = false;    // delete once every durable subscription acked
  bool dead_letter_expired = false;  // TTL-expired messages are dead-lettered
  bool temporary = false;     // ends with the connection that created it

  bool has_retention() const {
    return max_age_ms || max_bytes || max_messages || work_queue;
  }
  bool operator==(const TopicSettings& o) const {
    return max_age_ms == o.max_age_ms && max_bytes == o.max_bytes &&
           max_messages == o.max_messages && work_queue == o.work_queue &&
           dead_letter_expired == o.dead_letter_expired &&
           temporary == o.temporary;
  }
};

// What a topic holds. Written with every batch that appends to the topic or
// removes from it, so it is always exactly what the stored messages are —
// and the next offset survives even when retention removed every message.
struct TopicState {
  uint64_t first_offset = 0;  // lowest offset that may be stored
  uint64_t next_offset = 0;   // offset the next append gets
  uint64_t messages = 0;      // messages stored
  uint64_t bytes = 0;         // bytes of their records
  uint64_t scheduled = 0;     // scheduled messages not yet appended
  uint64_t next_ticket = 0;   // ticket the next scheduled message gets
};

struct TopicRecord {
  uint64_t id = 0;
  std::string name;
  TopicSettings settings;
  TopicState state;
};

// Acknowledgement state of a durable subscription: every offset below
// ack_floor is acked, and so are the inclusive ranges above it.
struct Cursor {
  uint64_t ack_floor = 0;
  std::vector<std::pair<uint64_t, uint64_t>> acked;  // sorted, disjoint, > floor
};

// A message of a subscription that was delivered and came back (nack,
// timeout, lost consumer): how often it was delivered, and for a delayed nack
// when it is due (Unix ms; 0: now). Kept so that attempt counts and delays
// survive a restart.
struct Redelivery {
  uint64_t offset = 0;
  uint32_t attempts = 0;  // below 2^31
  int64_t due_ms = 0;
  // Nacked for good: it goes to the dead-letter topic, not to a consumer.
  bool rejected = false;
};

struct SubscriptionRecord {
  uint64_t topic_id = 0;
  std::string name;
  uint32_t ack_timeout_ms = 0;
  Cursor cursor;
  std::vector<Redelivery> redeliveries;  // sorted by offset
  uint64_t skipped = 0;  // messages retention removed before they were acked
  // Kept apart ("P" key), written only when they change: put_subscription()
  // leaves them alone, put_subscription_settings() writes only them. A store
  // from before they were kept loads the defaults.
  uint32_t max_deliveries = 16;
  std::string dead_letter_topic;  // empty: "<topic>.dlq"
  std::vector<uint32_t> retry_delays_ms;  // empty: the broker's default
};

// A producer message id seen on a topic, for de-duplication: a publish
// carrying it again before `expires_ms` gets `offset` back instead of a new
// append.
struct DedupeRecord {
  uint64_t topic_id = 0;
  std::string id;
  uint64_t offset = 0;
  int64_t expires_ms = 0;
};

// Messages of one Publish frame that carried a producer and sequence numbers
// (Publish.producer, Publish.sequence): sequences [first_sequence,
// first_sequence + count) of `producer` were appended at offsets from
// `first_offset` on. A publish carrying one of them again before
// `expires_ms` gets its offset back instead of a new append.
struct SequencesRecord {
  uint64_t topic_id = 0;
  uint64_t producer = 0;
  uint64_t first_sequence = 0;
  uint64_t count = 0;
  uint64_t first_offset = 0;
  int64_t expires_ms = 0;
};

// A message as read back: its offset and its record bytes (record.h decodes).
struct StoredMessage {
  uint64_t offset = 0;
  std::string record;
};

// A scheduled message: when it is due (Unix ms), its ticket (unique in its
// topic), and its record, stamped with the time it was scheduled.
struct ScheduledMessage {
  int64_t due_ms = 0;
  uint64_t ticket = 0;
  std::string record;
};

// Writes to commit together. Built on the broker's loop thread, handed to the
// storage thread, committed with Store::commit().
class Store;
class FaultListener;

class Batch {
 public:
  explicit Batch(const Store& store);

  void put_message(uint64_t topic_id, uint64_t offset, const void* record,
                   size_t size);
  void put_topic(const TopicRecord& topic);  // name and settings
  void put_topic_state(uint64_t topic_id, const TopicState& state);
  // Removes the messages of `topic_id` in [from, to) with one range delete.
  void delete_messages(uint64_t topic_id, uint64_t from, uint64_t to);
  // Removes the topic and everything of it: messages, subscriptions,
  // de-duplication ids and producer sequences.
  void delete_topic(uint64_t topic_id);
  void put_subscription(const SubscriptionRecord& subscription);
  void put_subscription_settings(const SubscriptionRecord& subscription);
  void delete_subscription(uint64_t topic_id, const std::string& name);
  void put_dedupe(const DedupeRecord& dedupe);
  void delete_dedupe(uint64_t topic_id, const std::string& id);
  void put_sequences(const SequencesRecord& sequences);
  // Removes the records of `producer` whose first sequence is in [from, to).
  void delete_sequences(uint64_t topic_id, uint64_t producer, uint64_t from,
                        uint64_t to);
  void put_scheduled(uint64_t topic_id, int64_t due_ms, uint64_t ticket,
                     const void* record, size_t size);
  void delete_scheduled(uint64_t topic_id, int64_t due_ms, uint64_t ticket);

  bool empty() const { return batch_.Count() == 0; }
  uint32_t count() const { return batch_.Count(); }
  size_t bytes() const { return batch_.GetDataSize(); }
  void clear() { batch_.Clear(); }

 private:
  friend class Store;
  rocksdb::ColumnFamilyHandle* meta_;
  rocksdb::ColumnFamilyHandle* messages_;
  rocksdb::WriteBatch batch_;
};

class Store {
 public:
  // Opens the store at options.path, creating it only if the directory does
  // not exist or is empty. A directory holding anything that is not a Tern
  // store, or a store RocksDB reports as corrupt, is refused with a message
  // that says so; nothing is ever overwritten. A directory already open in
  // another process is refused too (RocksDB's LOCK file).
  static Status open(const Options& options, std::unique_ptr<Store>* out);
  ~Store();

  // Everything known at open time, for the broker to rebuild its state.
  Status load_topics(std::vector<TopicRecord>* out);
  Status load_subscriptions(std::vector<SubscriptionRecord>* out);
  Status load_dedupe(std::vector<DedupeRecord>* out);
  // In key order: by topic, producer, then first sequence.
  Status load_sequences(std::vector<SequencesRecord>* out);

  // Commits the whole batch atomically (and durably when options.sync).
  // Fails without writing anything if free space is below
  // options.min_free_bytes. Leaves the batch unchanged; the caller clears it.
  Status commit(Batch& batch);

  // True from a storage fault (see the top of this file) until resume()
  // succeeds or RocksDB recovers by itself: commit() then fails without
  // writing. Cheap (one atomic load); any thread.
  bool failed() const;
  // A RocksDB integer property ("rocksdb.total-sst-files-size"), summed over
  // the column families for the per-family ones; 0 if RocksDB has none.
  uint64_t property(const std::string& name, bool per_family) const;
  // Asks RocksDB to recover from the fault (DB::Resume: it flushes the
  // memtables into new files and lets writes in again). Ok when the store
  // is writable again, or never failed. May take as long as a flush; call
  // it where a commit could run, never on the broker's loop.
  Status resume();

  // Reads messages of `topic_id` with offset >= from, in order, stopping after
  // max_messages messages or once max_bytes of records have been read.
  Status read(uint64_t topic_id, uint64_t from, size_t max_messages,
              size_t max_bytes, std::vector<StoredMessage>* out);

  // Sets *offset to the first message of `topic_id` in [first, end) appended
  // at or after `time_ms` (Unix ms), or to `end` if there is none. Append
  // times rise with offsets, so this is a binary search: a few dozen point
  // reads however long the topic.
  Status offset_at_time(uint64_t topic_id, uint64_t first, uint64_t end,
                        int64_t time_ms, uint64_t* offset);

  // Reads the scheduled messages of `topic_id` due by `due_by` (Unix ms), in
  // the order they fall due, from the entry (from_due, from_ticket) on; at
  // most max_messages, and stopping once max_bytes were read. *next_due is
  // the due time of the first entry after those read (INT64_MAX: none).
  Status read_scheduled(uint64_t topic_id, int64_t from_due,
                        uint64_t from_ticket, int64_t due_by,
                        size_t max_messages, size_t max_bytes,
                        std::vector<ScheduledMessage>* out, int64_t* next_due);

  // Calls visit(offset, record bytes) for the messages of `topic_id` from
  // `from` on, in order, until it returns false or the topic ends. The bytes
  // are only valid during the call. For scans that should not copy.
  using Visitor =
      std::function<bool(uint64_t offset, const char* record, size_t size)>;
  Status scan(uint64_t topic_id, uint64_t from, const Visitor& visit);

  // Compacts the messages of `topic_id` below `end`, so that space freed by
  // range deletes is given back to the file system now rather than whenever
  // RocksDB next compacts those files.
  Status compact(uint64_t topic_id, uint64_t end);

  // Bytes the messages of `topic_id` take in the data directory's files, as
  // RocksDB estimates them (memtables included).
  uint64_t disk_bytes(uint64_t topic_id);

 private:
  friend class Batch;
  Store() = default;
  Status load_topic(TopicRecord* topic);  // settings and state of one
  Options options_;
  // Declared before db_, so they outlive it: RocksDB uses both until closed.
  std::unique_ptr<rocksdb::Env> env_;  // on options_.file_system, if set
  std::shared_ptr<FaultListener> faults_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;      // owned by db_
  rocksdb::ColumnFamilyHandle* messages_ = nullptr;  // owned by Store
};

}  // namespace tern::storage
