#include "fault_listener.h"

namespace tern::storage {

namespace {

const char* describe(rocksdb::BackgroundErrorReason reason) {
  switch (reason) {
    case rocksdb::BackgroundErrorReason::kFlush:
    case rocksdb::BackgroundErrorReason::kFlushNoWAL:
      return "flush";
    case rocksdb::BackgroundErrorReason::kCompaction:
      return "compaction";
    case rocksdb::BackgroundErrorReason::kWriteCallback:
      return "write-ahead log write or sync";
    case rocksdb::BackgroundErrorReason::kMemTable:
      return "memtable insert";
    case rocksdb::BackgroundErrorReason::kManifestWrite:
    case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL:
      return "MANIFEST write";
  }
  return "background work";
}

}  // namespace

std::string FaultListener::reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reason_;
}

void FaultListener::recovered() {
  std::lock_guard<std::mutex> lock(mu_);
  failed_.store(false, std::memory_order_release);
  reason_.clear();
}

void FaultListener::OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                                      rocksdb::Status* error) {
  // See the file comment: a plain I/O error can be resumed from.
  if (error->IsIOError() &&
      error->severity() == rocksdb::Status::Severity::kFatalError)
    *error = rocksdb::Status(*error, rocksdb::Status::Severity::kHardError);
  std::lock_guard<std::mutex> lock(mu_);
  // The first error of a fault says what happened; later ones are its
  // consequences (every write after it fails too).
  if (!failed_.load(std::memory_order_relaxed))
    reason_ = std::string(describe(reason)) + " failed: " + error->ToString();
  failed_.store(true, std::memory_order_release);
}

void FaultListener::OnErrorRecoveryEnd(
    const rocksdb::BackgroundErrorRecoveryInfo& info) {
  // RocksDB's own recovery (of errors it considers retryable) got there.
  if (info.new_bg_error.ok()) recovered();
}

}  // namespace tern::storage
