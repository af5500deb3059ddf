// FaultFs: a RocksDB file system that fails chosen operations on demand, for
// tests of storage faults (the broker never links it). It wraps the
// operating system's file system through RocksDB's public wrapper classes
// and, while a fault is set, answers matching calls with an I/O error
// without doing them — as a disk that returns EIO would.
//
//   auto fs = std::make_shared<FaultFs>();
//   options.file_system = fs;             // storage::Options
//   fs->fail(FaultFs::kSync, ".log");    // every WAL sync fails ...
//   fs->clear();                          // ... until now
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <mutex>
#include <string>

namespace tern::test {

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  enum Op {
    kWrite,   // Append / PositionedAppend to a file being written
    kSync,    // Sync / Fsync of a file being written
    kRename,  // RenameFile (how RocksDB installs CURRENT)
    kCreate,  // NewWritableFile (a new WAL, table file, MANIFEST)
  };

  FaultFs();
  const char* Name() const override { return "TernFaultFs"; }

  // From now on, `op` fails on every file whose name contains `name_part`
  // (".log": WAL files, ".sst": table files, "MANIFEST", "" for any file),
  // until clear(), if the calling thread's name contains `thread_part`.
  // RocksDB names its threads for their pool: "rocksdb:low" compacts,
  // "rocksdb:high" flushes. One fault at a time.
  void fail(Op op, std::string name_part = "", std::string thread_part = "");
  void clear();
  // Calls failed on purpose so far.
  int failures() const { return failures_.load(); }

  // Whether this call fails; counts it if so. Used by the file wrappers.
  bool should_fail(Op op, const std::string& file);

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

 private:
  std::mutex mu_;
  bool active_ = false;      // guarded by mu_
  Op op_ = kWrite;           // guarded by mu_
  std::string name_part_;    // guarded by mu_
  std::string thread_part_;  // guarded by mu_
  std::atomic<int> failures_{0};
};

}  // namespace tern::test
