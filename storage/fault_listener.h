// FaultListener: what the store knows about a storage fault that keeps it
// from writing.
//
// RocksDB reports a failed flush, compaction, or WAL write or sync as a
// "background error" and then refuses every write until DB::Resume() succeeds
// (or, for some retryable errors, until its own recovery thread gets there).
// This listener notices those errors as they happen, on RocksDB's threads,
// and keeps one flag that the storage thread reads before every commit, so a
// commit during a fault fails at once with the reason instead of asking
// RocksDB, and the broker can tell "read-only until recovered" apart from a
// single failed batch.
//
// Severity: RocksDB 7.8 classes a plain I/O error (EIO from write or fsync)
// during a flush, a compaction or a WAL write as *fatal*, which DB::Resume()
// refuses; only closing and reopening the database would clear it. Such an
// error leaves nothing inconsistent that Resume does not redo: the failed
// write batch never reached the memtable, Resume flushes every memtable into
// new, synced files (so the damaged WAL is no longer needed) and writes a new
// MANIFEST if the old one failed, and a failed flush or compaction leaves its
// inputs untouched. So the listener lowers those to *hard* errors, which
// Resume may clear — what later RocksDB versions do for file-scoped I/O
// errors. Corruption and errors flagged as data loss stay fatal.
#pragma once

#include <rocksdb/listener.h>

#include <atomic>
#include <mutex>
#include <string>

namespace tern::storage {

class FaultListener : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "TernFaultListener"; }

  // Whether writes are refused since a background error. One atomic load:
  // it is on every commit's path.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // What failed, for the operator ("flush: IO error: ..."); empty when
  // nothing did.
  std::string reason() const;
  // The store is writable again (DB::Resume() succeeded).
  void recovered();

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* error) override;
  void OnErrorRecoveryEnd(
      const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string reason_;  // guarded by mu_
};

}  // namespace tern::storage
