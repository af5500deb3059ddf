// Store: the durable log on RocksDB (contract and key layout in store.h).
//
// Opening is the delicate part, because the operator's data directory may hold
// anything. The rule is: a new store is only ever created in a directory that
// does not exist or is empty, and an existing directory is first inspected
// read-only (its column family list, then the "F" marker) before the store is
// opened for writing. So a foreign RocksDB database, or any other files, are
// refused without a single byte of theirs being changed.
#include "store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "fault_listener.h"
#include "layout.h"
#include "record.h"

namespace tern::storage {

namespace {

namespace fs = std::filesystem;

const char kMarkerKey[] = "F";
const char kMarkerValue[] = "tern-store-1";
// --- RocksDB configuration ---------------------------------------------------

// `env`: null for the operating system's (see Options::file_system).
rocksdb::DBOptions db_options(rocksdb::Env* env) {
  rocksdb::DBOptions options;
  if (env != nullptr) options.env = env;
  // RocksDB's own info LOG lives in the data directory; keep a few old ones
  // for diagnosis rather than the default thousand.
  options.keep_log_file_num = 5;
  return options;
}

// The messages family is an append-only log: keys only ever grow within a
// topic, values are written once and read back mostly in order.
rocksdb::ColumnFamilyOptions messages_options() {
  rocksdb::ColumnFamilyOptions options;
  // Payloads are the publisher's bytes, often already compressed or too small
  // to gain; compressing them would spend CPU on every flush and compaction
  // for little. Users who want compression compress before publishing.
  options.compression = rocksdb::kNoCompression;
  options.bottommost_compression = rocksdb::kNoCompression;
  // A large memtable absorbs bursts and makes fewer, bigger L0 files, so the
  // write path flushes less often. Recent messages are also served from it.
  options.write_buffer_size = 64 << 20;
  // Level compaction (the default) suits this: appends arrive in key order
  // per topic, so most compactions are trivial moves of non-overlapping files.
  return options;
}

// Metadata (topics, subscription cursors) is small and rewritten in place;
// the defaults are right for it.
rocksdb::ColumnFamilyOptions meta_options() {
  return rocksdb::ColumnFamilyOptions();
}

std::vector<rocksdb::ColumnFamilyDescriptor> family_descriptors() {
  return {
      rocksdb::ColumnFamilyDescriptor(rocksdb::kDefaultColumnFamilyName,
                                      meta_options()),
      rocksdb::ColumnFamilyDescriptor(kMessagesFamily, messages_options()),
  };
}

std::string open_error(const std::string& path, const rocksdb::Status& s) {
  // RocksDB reports the LOCK file it could not take as an IO error naming
  // it, whether another process holds it or this one already does.
  if (s.IsIOError() && s.ToString().find("/LOCK:") != std::string::npos) {
    return path + " is in use by another broker (RocksDB: " + s.ToString() +
           ")";
  }
  return "cannot open the Tern store at " + path + ": " + s.ToString();
}

Status malformed_message_key(const std::string& path) {
  return Status::error("malformed message key in " + path);
}

std::string not_tern_store(const std::string& path, const std::string& why) {
  return path + " is not a Tern store (" + why + "); refusing to touch it";
}

// A read-only view of an existing database, closed when it goes out of scope.
// Handles must be released before the database is deleted.
struct ReadOnlyDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;

  ~ReadOnlyDb() {
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
  }
};

bool family_is_empty(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family,
                     rocksdb::Status* status) {
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), family));
  it->SeekToFirst();
  *status = it->status();
  return !it->Valid();
}

// Inspects the existing database at `path` without writing to it. Sets
// *finish_creation when it is an empty store whose creation was interrupted
// before the marker was written (it has only Tern's column families and no
// data at all), which is safe to complete.
Status inspect_existing(const std::string& path, rocksdb::Env* env,
                        bool* finish_creation) {
  *finish_creation = false;
  rocksdb::DBOptions options = db_options(env);

  std::vector<std::string> families;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options, path, &families);
  if (!s.ok()) return Status::error(open_error(path, s));
  for (const auto& name : families) {
    if (name != rocksdb::kDefaultColumnFamilyName && name != kMessagesFamily) {
      return Status::error(not_tern_store(
          path, "it is a RocksDB database with a column family \"" + name +
                    "\" Tern does not use"));
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : families) {
    descriptors.emplace_back(
        name, name == kMessagesFamily ? messages_options() : meta_options());
  }
  ReadOnlyDb view;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(options, path, descriptors, &view.handles,
                                   &raw);
  view.db.reset(raw);
  if (!s.ok()) return Status::error(open_error(path, s));

  std::string marker;
  s = view.db->Get(rocksdb::ReadOptions(), view.db->DefaultColumnFamily(),
                   kMarkerKey, &marker);
  if (s.ok()) {
    if (marker != kMarkerValue) {
      return Status::error(not_tern_store(path, "its marker says \"" + marker +
                                                    "\", this build reads \"" +
                                                    kMarkerValue + "\""));
    }
    if (families.size() != 2) {
      return Status::error(open_error(
          path, rocksdb::Status::Corruption("the messages column family is "
                                            "missing")));
    }
    return Status::ok();
  }
  if (!s.IsNotFound()) return Status::error(open_error(path, s));

  // No marker: only an empty database made by an interrupted creation is ours.
  for (auto* handle : view.handles) {
    if (!family_is_empty(view.db.get(), handle, &s)) {
      return Status::error(not_tern_store(
          path, "it is a RocksDB database without Tern's marker"));
    }
    if (!s.ok()) return Status::error(open_error(path, s));
  }
  *finish_creation = true;
  return Status::ok();
}

}  // namespace

// --- Batch -------------------------------------------------------------------

Batch::Batch(const Store& store)
    : meta_(store.meta_), messages_(store.messages_) {}

void Batch::put_message(uint64_t topic_id, uint64_t offset, const void* record,
                        size_t size) {
  batch_.Put(messages_, message_key(topic_id, offset),
             rocksdb::Slice(static_cast<const char*>(record), size));
}

void Batch::put_topic(const TopicRecord& topic) {
  batch_.Put(meta_, topic_key(topic.id), topic.name);
  batch_.Put(meta_, topic_key(topic.id, kTopicSettingsTag),
             encode_settings(topic.settings));
}

void Batch::put_topic_state(uint64_t topic_id, const TopicState& state) {
  batch_.Put(meta_, topic_key(topic_id, kTopicStateTag), encode_state(state));
}

void Batch::delete_messages(uint64_t topic_id, uint64_t from, uint64_t to) {
  batch_.DeleteRange(messages_, message_key(topic_id, from),
                     message_key(topic_id, to));
}

void Batch::delete_topic(uint64_t topic_id) {
  // Topic ids are never reused, so the last id's range end cannot collide.
  batch_.DeleteRange(messages_, message_key(topic_id, 0),
                     message_key(topic_id + 1, 0));
  for (char tag : {kTopicTag, kTopicSettingsTag, kTopicStateTag})
    batch_.Delete(meta_, topic_key(topic_id, tag));
  for (char tag : {kSubscriptionTag, kSubscriptionSettingsTag, kDedupeTag,
                   kSequencesTag, kScheduledTag})
    batch_.DeleteRange(meta_, topic_key(topic_id, tag),
                       topic_key(topic_id + 1, tag));
}

void Batch::put_subscription(const SubscriptionRecord& subscription) {
  batch_.Put(meta_, subscription_key(subscription.topic_id, subscription.name),
             encode_subscription(subscription));
}

// Settings value: u32 max_deliveries, the dead-letter topic's bytes, then
// (since retry delays) a 0 byte, which no topic name holds, and u32 each
// retry delay. Values from before end with the topic name.
void Batch::put_subscription_settings(const SubscriptionRecord& s) {
  std::string value;
  put_le32(&value, s.max_deliveries);
  value += s.dead_letter_topic;
  if (!s.retry_delays_ms.empty()) {
    value += '\0';
    for (uint32_t delay : s.retry_delays_ms) put_le32(&value, delay);
  }
  batch_.Put(meta_,
             subscription_key(s.topic_id, s.name, kSubscriptionSettingsTag),
             value);
}

void Batch::delete_subscription(uint64_t topic_id, const std::string& name) {
  batch_.Delete(meta_, subscription_key(topic_id, name));
  batch_.Delete(meta_,
                subscription_key(topic_id, name, kSubscriptionSettingsTag));
}

void Batch::put_dedupe(const DedupeRecord& dedupe) {
  std::string value;
  value.reserve(16);
  put_le64(&value, dedupe.offset);
  put_le64(&value, uint64_t(dedupe.expires_ms));
  batch_.Put(meta_, dedupe_key(dedupe.topic_id, dedupe.id), value);
}

void Batch::delete_dedupe(uint64_t topic_id, const std::string& id) {
  batch_.Delete(meta_, dedupe_key(topic_id, id));
}

// Value: u64 count, u64 first_offset, u64 expires_ms.
void Batch::put_sequences(const SequencesRecord& r) {
  std::string value;
  value.reserve(24);
  put_le64(&value, r.count);
  put_le64(&value, r.first_offset);
  put_le64(&value, uint64_t(r.expires_ms));
  batch_.Put(meta_, sequences_key(r.topic_id, r.producer, r.first_sequence),
             value);
}

void Batch::delete_sequences(uint64_t topic_id, uint64_t producer,
                             uint64_t from, uint64_t to) {
  batch_.DeleteRange(meta_, sequences_key(topic_id, producer, from),
                     sequences_key(topic_id, producer, to));
}

// --- Store -------------------------------------------------------------------

Status Store::open(const Options& options, std::unique_ptr<Store>* out) {
  const std::string& path = options.path;
  std::error_code ec;
  bool creating = false;
  if (!fs::exists(path, ec)) {
    if (ec)
      return Status::error("cannot inspect " + path + ": " + ec.message());
    fs::create_directories(path, ec);
    if (ec) return Status::error("cannot create " + path + ": " + ec.message());
    creating = true;
  } else if (!fs::is_directory(path, ec)) {
    return Status::error(path + " is not a directory");
  } else {
    bool empty = fs::is_empty(path, ec);
    if (ec) return Status::error("cannot read " + path + ": " + ec.message());
    if (empty) {
      creating = true;
    } else if (!fs::exists(fs::path(path) / "CURRENT", ec)) {
      return Status::error(path +
                           " is not a Tern data directory (it is not empty "
                           "and holds no Tern store); refusing to touch it");
    }
  }

  std::unique_ptr<Store> store(new Store());
  store->options_ = options;
  if (options.file_system)
    store->env_ = rocksdb::NewCompositeEnv(options.file_system);
  store->faults_ = std::make_shared<FaultListener>();

  bool write_marker = creating;
  if (!creating) {
    Status s = inspect_existing(path, store->env_.get(), &write_marker);
    if (!s.is_ok()) return s;
  }

  rocksdb::DBOptions db_opts = db_options(store->env_.get());
  db_opts.listeners.push_back(store->faults_);
  db_opts.create_if_missing = creating;
  db_opts.error_if_exists = creating;  // someone else got there first
  // Also completes a creation that stopped before its column family was made.
  db_opts.create_missing_column_families = write_marker;

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_opts, path, family_descriptors(), &handles, &raw);
  store->db_.reset(raw);
  if (!s.ok()) return Status::error(open_error(path, s));
  // The default family's handle is also reachable from the DB itself, which
  // owns that one; keep only the messages handle.
  store->db_->DestroyColumnFamilyHandle(handles[0]);
  store->meta_ = store->db_->DefaultColumnFamily();
  store->messages_ = handles[1];

  if (write_marker) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = store->db_->Put(sync, store->meta_, kMarkerKey, kMarkerValue);
    if (!s.ok()) return Status::error(open_error(path, s));
  }
  *out = std::move(store);
  return Status::ok();
}

Store::~Store() {
  if (!db_) return;
  // Without per-commit fsync the WAL is in the OS cache; a clean shutdown
  // should still leave it on disk. Not after a fault: syncing a WAL whose
  // write failed aborts the process in Debian's RocksDB (an assertion), and
  // nothing unsynced of it was confirmed as synced anyway.
  if (!options_.sync && !faults_->failed()) db_->SyncWAL();
  if (messages_ != nullptr) db_->DestroyColumnFamilyHandle(messages_);
  db_->Close();
}

uint64_t Store::property(const std::string& name, bool per_family) const {
  uint64_t value = 0;
  bool ok = per_family ? db_->GetAggregatedIntProperty(name, &value)
                       : db_->GetIntProperty(name, &value);
  return ok ? value : 0;
}

Status Store::commit(Batch& batch) {
  // The only cost faults add to a commit: RocksDB would refuse it anyway,
  // this says why, and takes no lock.
  if (faults_->failed())
    return Status::error("storage is read-only after a fault (" +
                         faults_->reason() + "); nothing was written");
  if (options_.min_free_bytes > 0) {
    struct statvfs fs;
    if (statvfs(options_.path.c_str(), &fs) == 0) {
      uint64_t free_bytes = uint64_t(fs.f_bavail) * fs.f_frsize;
      if (free_bytes < options_.min_free_bytes) {
        return Status::error(
            "disk full: " + std::to_string(free_bytes >> 20) +
            " MiB free in " + options_.path + ", below the limit of " +
            std::to_string(options_.min_free_bytes >> 20) +
            " MiB; nothing was written");
      }
    }
  }
  rocksdb::WriteOptions write;
  write.sync = options_.sync;
  rocksdb::Status s = db_->Write(write, &batch.batch_);
  if (!s.ok()) {
    return Status::error("write to " + options_.path +
                         " failed: " + s.ToString());
  }
  return Status::ok();
}

bool Store::failed() const { return faults_->failed(); }

Status Store::resume() {
  if (!faults_->failed()) return Status::ok();
  // Resume starts a new WAL only if it has a memtable to flush. After a
  // WAL write that failed while the memtables were empty (the first commit
  // after opening, or after a flush) RocksDB 7.8 would go on with the WAL
  // whose writer saw the error, and every later write would fail (or, with
  // assertions on, as in Debian's build, abort the process). So a write
  // that skips the WAL (the marker, as it is) and a flush check that writes
  // work; if the flush meets that WAL, the memtable is no longer empty and
  // a second Resume switches to a new one.
  rocksdb::Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    s = db_->Resume();
    if (!s.ok()) break;
    rocksdb::WriteOptions no_wal;
    no_wal.disableWAL = true;
    s = db_->Put(no_wal, meta_, kMarkerKey, kMarkerValue);
    if (s.ok()) s = db_->Flush(rocksdb::FlushOptions(), meta_);
    if (s.ok()) break;
  }
  if (!s.ok()) {
    return Status::error("cannot resume writing to " + options_.path + ": " +
                         s.ToString());
  }
  faults_->recovered();
  return Status::ok();
}

Status Store::read(uint64_t topic_id, uint64_t from, size_t max_messages,
                   size_t max_bytes, std::vector<StoredMessage>* out) {
  out->clear();
  if (max_messages == 0) return Status::ok();

  // The bound keeps the iterator inside this topic's key range, so RocksDB
  // stops at the end of the topic instead of reading into the next one. The
  // last possible topic id has no "next" key and relies on the prefix check.
  std::string prefix;
  put_be64(&prefix, topic_id);
  std::string upper;
  rocksdb::Slice upper_slice;
  rocksdb::ReadOptions read_options;
  if (topic_id != UINT64_MAX) {
    upper = message_key(topic_id + 1, 0);
    upper_slice = upper;
    read_options.iterate_upper_bound = &upper_slice;
  }

  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read_options, messages_));
  size_t bytes = 0;
  for (it->Seek(message_key(topic_id, from));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (out->size() >= max_messages || (!out->empty() && bytes >= max_bytes))
      break;
    if (it->key().size() != 16) return malformed_message_key(options_.path);
    StoredMessage message;
    message.offset = get_be64(it->key().data() + 8);
    message.record = it->value().ToString();
    bytes += message.record.size();
    out->push_back(std::move(message));
  }
  if (!it->status().ok()) {
    return Status::error("cannot read topic " + std::to_string(topic_id) +
                         " from " + options_.path + ": " +
                         it->status().ToString());
  }
  return Status::ok();
}

Status Store::offset_at_time(uint64_t topic_id, uint64_t first, uint64_t end,
                             int64_t time_ms, uint64_t* offset) {
  // Messages below lo are older than time_ms; `found` is the first message
  // at or after hi (end if none), and none in [lo, hi) is later than it.
  uint64_t lo = first, hi = end, found = end;
  std::vector<StoredMessage> one;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    Status s = read(topic_id, mid, 1, 1, &one);
    if (!s.is_ok()) return s;
    if (one.empty() || one[0].offset >= hi) {
      hi = mid;  // nothing stored in [mid, hi)
      continue;
    }
    const wire::StoredMessage* m = decode_record(one[0].record);
    if (m != nullptr && m->timestamp_ms() < time_ms) {
      lo = one[0].offset + 1;
    } else {  // an unreadable record is not skipped: start there
      hi = mid;
      found = one[0].offset;
    }
  }
  *offset = found;
  return Status::ok();
}

Status Store::scan(uint64_t topic_id, uint64_t from, const Visitor& visit) {
  std::string prefix;
  put_be64(&prefix, topic_id);
  std::string upper;
  rocksdb::Slice upper_slice;
  rocksdb::ReadOptions read_options;
  if (topic_id != UINT64_MAX) {  // see read()
    upper = message_key(topic_id + 1, 0);
    upper_slice = upper;
    read_options.iterate_upper_bound = &upper_slice;
  }
  // A scan reads each block once: keeping them in the block cache would only
  // push out what consumers read.
  read_options.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read_options, messages_));
  for (it->Seek(message_key(topic_id, from));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != 16) return malformed_message_key(options_.path);
    rocksdb::Slice value = it->value();
    if (!visit(get_be64(it->key().data() + 8), value.data(), value.size()))
      break;
  }
  if (!it->status().ok()) {
    return Status::error("cannot read topic " + std::to_string(topic_id) +
                         " from " + options_.path + ": " +
                         it->status().ToString());
  }
  return Status::ok();
}

Status Store::compact(uint64_t topic_id, uint64_t end) {
  // RocksDB refuses too, but a flush meeting a failed WAL is best avoided.
  if (faults_->failed())
    return Status::error("cannot compact " + options_.path +
                         ": storage is read-only after a fault (" +
                         faults_->reason() + ")");
  std::string begin_key = message_key(topic_id, 0);
  std::string end_key = message_key(topic_id, end);
  rocksdb::Slice begin_slice = begin_key, end_slice = end_key;
  rocksdb::CompactRangeOptions options;
  // Rewrite the bottom level too: that is where old messages are.
  options.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForceOptimized;
  rocksdb::Status s =
      db_->CompactRange(options, messages_, &begin_slice, &end_slice);
  if (!s.ok()) {
    return Status::error("cannot compact topic " + std::to_string(topic_id) +
                         " in " + options_.path + ": " + s.ToString());
  }
  return Status::ok();
}

uint64_t Store::disk_bytes(uint64_t topic_id) {
  std::string begin_key = message_key(topic_id, 0);
  std::string end_key = message_key(topic_id + 1, 0);
  rocksdb::Range range(begin_key, end_key);
  uint64_t size = 0;
  rocksdb::SizeApproximationOptions options;
  options.include_memtables = true;
  options.include_files = true;
  db_->GetApproximateSizes(options, messages_, &range, 1, &size);
  return size;
}

}  // namespace tern::storage
