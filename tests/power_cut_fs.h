// PowerCutFs: a RocksDB file system that can simulate a power cut, for
// testing what --fsync always promises (tests/power_cut.h runs the loop).
//
// It passes everything to the operating system's file system and remembers
// what a disk would still hold if the power went off now:
//   - of each file it wrote, the size at its last successful Sync/Fsync
//     (RocksDB only appends, so that is a prefix of the file);
//   - of each directory entry created or renamed since the last fsync of
//     its directory, what the entry was before (absent, or the durable
//     contents of the file it replaced, kept in a backup).
// At the cut (cut_after: after a chosen number of writing calls, so a test
// can cut anywhere, also in the middle of a flush) every later writing call
// fails and does nothing, as the disk is gone. Once the store is closed,
// settle() makes the directory what the disk would hold: files cut back to
// their last sync, unsynced entries undone. Then the store is reopened.
//
// Not modelled: deletions are taken as durable at once (RocksDB deletes only
// files it no longer needs, so a deleted file coming back changes nothing),
// and a sync is taken to persist the whole file, as fsync does.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace tern::test {

class PowerCutFs : public rocksdb::FileSystemWrapper {
 public:
  // `backup_dir`: where replaced files are kept until their directory is
  // synced; outside the store's directory, and existing.
  explicit PowerCutFs(std::string backup_dir);
  const char* Name() const override { return "TernPowerCutFs"; }

  // The power goes off at the `calls`-th writing call from now (an append,
  // sync, rename, file creation, deletion, directory sync): it and every
  // later one fail.
  void cut_after(uint64_t calls);
  bool cut() const { return cut_.load(); }
  // Writing calls seen so far.
  uint64_t calls() const { return calls_.load(); }

  // With every file of the store closed: brings its directory to what a
  // disk would hold after the cut. Returns an error message, or "".
  std::string settle();

  // Used by the file and directory wrappers.
  bool power_fails();  // counts a writing call; true once the power is off
  void wrote(const std::string& file, uint64_t size);
  void synced(const std::string& file);
  void synced_dir(const std::string& dir);

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& name,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

 private:
  struct File {
    uint64_t size = 0;    // written
    uint64_t synced = 0;  // durable
  };
  // Before its directory is synced, an entry may still be what it was:
  // nothing, or the file kept at `backup`.
  struct Entry {
    std::optional<std::string> backup;
  };

  // Remembers what `path` is durably, before it changes (mu_ held).
  void journal(const std::string& path);

  const std::string backup_dir_;
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> cut_at_{UINT64_MAX};
  std::atomic<bool> cut_{false};
  std::mutex mu_;
  std::map<std::string, File> files_;     // guarded by mu_; by path
  std::map<std::string, Entry> entries_;  // guarded by mu_; by path
  uint64_t backups_ = 0;                  // guarded by mu_
};

}  // namespace tern::test
