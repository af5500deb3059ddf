#include "power_cut_fs.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

namespace tern::test {

namespace {

namespace fs = std::filesystem;

std::string normal(const std::string& path) {
  std::string p = fs::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string parent(const std::string& path) {
  return fs::path(path).parent_path().string();
}

rocksdb::IOStatus power_off(const std::string& what) {
  return rocksdb::IOStatus::IOError("simulated power cut", what);
}

// A file being written: every writing call counts toward the cut, and the
// file system learns what was written and what was synced.
class CutFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CutFile(std::unique_ptr<rocksdb::FSWritableFile> file, PowerCutFs& fs,
          std::string name, uint64_t size)
      : FSWritableFileOwnerWrapper(std::move(file)),
        fs_(fs),
        name_(std::move(name)),
        size_(size) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return appended(FSWritableFileOwnerWrapper::Append(data, options, dbg),
                    size_ + data.size());
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return appended(
        FSWritableFileOwnerWrapper::Append(data, options, info, dbg),
        size_ + data.size());
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return appended(FSWritableFileOwnerWrapper::PositionedAppend(data, offset,
                                                                 options, dbg),
                    std::max(size_, offset + data.size()));
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return appended(FSWritableFileOwnerWrapper::PositionedAppend(
                        data, offset, options, info, dbg),
                    std::max(size_, offset + data.size()));
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return appended(FSWritableFileOwnerWrapper::Truncate(size, options, dbg),
                    size);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return synced(FSWritableFileOwnerWrapper::Sync(options, dbg));
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return synced(FSWritableFileOwnerWrapper::Fsync(options, dbg));
  }
  // sync_file_range: starts writeback, promises nothing.
  rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes,
                              const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    return FSWritableFileOwnerWrapper::RangeSync(offset, nbytes, options, dbg);
  }

 private:
  rocksdb::IOStatus appended(rocksdb::IOStatus s, uint64_t size) {
    if (s.ok()) {
      size_ = size;
      fs_.wrote(name_, size);
    }
    return s;
  }
  rocksdb::IOStatus synced(rocksdb::IOStatus s) {
    if (s.ok()) fs_.synced(name_);
    return s;
  }

  PowerCutFs& fs_;
  const std::string name_;
  uint64_t size_;
};

class CutDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  CutDirectory(std::unique_ptr<rocksdb::FSDirectory> dir, PowerCutFs& fs,
               std::string name)
      : FSDirectoryWrapper(std::move(dir)), fs_(fs), name_(std::move(name)) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (fs_.power_fails()) return power_off(name_);
    rocksdb::IOStatus s = FSDirectoryWrapper::Fsync(options, dbg);
    if (s.ok()) fs_.synced_dir(name_);
    return s;
  }
  rocksdb::IOStatus FsyncWithDirOptions(
      const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg,
      const rocksdb::DirFsyncOptions& dir_options) override {
    if (fs_.power_fails()) return power_off(name_);
    rocksdb::IOStatus s =
        FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
    if (s.ok()) fs_.synced_dir(name_);
    return s;
  }

 private:
  PowerCutFs& fs_;
  const std::string name_;
};

}  // namespace

PowerCutFs::PowerCutFs(std::string backup_dir)
    : FileSystemWrapper(rocksdb::FileSystem::Default()),
      backup_dir_(std::move(backup_dir)) {}

void PowerCutFs::cut_after(uint64_t calls) { cut_at_ = calls_.load() + calls; }

bool PowerCutFs::power_fails() {
  if (cut_.load()) return true;
  if (++calls_ < cut_at_.load()) return false;
  cut_ = true;
  return true;
}

void PowerCutFs::wrote(const std::string& file, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  File& f = files_[file];
  f.size = size;
  f.synced = std::min(f.synced, size);
}

void PowerCutFs::synced(const std::string& file) {
  std::lock_guard<std::mutex> lock(mu_);
  File& f = files_[file];
  f.synced = f.size;
}

void PowerCutFs::synced_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string name = normal(dir);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (parent(it->first) != name) {
      ++it;
      continue;
    }
    std::error_code ec;
    if (it->second.backup) fs::remove(*it->second.backup, ec);
    it = entries_.erase(it);
  }
}

void PowerCutFs::journal(const std::string& path) {
  if (entries_.count(path)) return;  // the first change since the sync counts
  Entry& entry = entries_[path];
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  // What survives of it is what was synced, or all of a file not written
  // here.
  std::string backup = backup_dir_ + "/" + std::to_string(++backups_);
  fs::copy_file(path, backup, fs::copy_options::overwrite_existing, ec);
  auto f = files_.find(path);
  if (f != files_.end()) fs::resize_file(backup, f->second.synced, ec);
  entry.backup = backup;
}

rocksdb::IOStatus PowerCutFs::NewWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  if (power_fails()) return power_off(name);
  std::string path = normal(name);
  {
    std::lock_guard<std::mutex> lock(mu_);
    journal(path);
    files_[path] = File();
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = target()->NewWritableFile(name, options, &file, dbg);
  if (s.ok()) result->reset(new CutFile(std::move(file), *this, path, 0));
  return s;
}

rocksdb::IOStatus PowerCutFs::ReopenWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  if (power_fails()) return power_off(name);
  std::string path = normal(name);
  std::error_code ec;
  uint64_t size = fs::exists(path, ec) ? fs::file_size(path, ec) : 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fs::exists(path, ec)) journal(path);
    if (!files_.count(path)) files_[path] = File{size, size};
    size = files_[path].size;
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = target()->ReopenWritableFile(name, options, &file, dbg);
  if (s.ok()) result->reset(new CutFile(std::move(file), *this, path, size));
  return s;
}

rocksdb::IOStatus PowerCutFs::NewDirectory(
    const std::string& name, const rocksdb::IOOptions& options,
    std::unique_ptr<rocksdb::FSDirectory>* result,
    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  rocksdb::IOStatus s = target()->NewDirectory(name, options, &dir, dbg);
  if (s.ok()) result->reset(new CutDirectory(std::move(dir), *this, name));
  return s;
}

rocksdb::IOStatus PowerCutFs::RenameFile(const std::string& from,
                                         const std::string& to,
                                         const rocksdb::IOOptions& options,
                                         rocksdb::IODebugContext* dbg) {
  if (power_fails()) return power_off(to);
  std::string src = normal(from), dst = normal(to);
  std::lock_guard<std::mutex> lock(mu_);
  journal(src);
  journal(dst);
  rocksdb::IOStatus s = target()->RenameFile(from, to, options, dbg);
  if (!s.ok()) return s;
  auto f = files_.find(src);
  if (f != files_.end()) {
    files_[dst] = f->second;
    files_.erase(src);
  } else {
    files_.erase(dst);
  }
  return s;
}

rocksdb::IOStatus PowerCutFs::DeleteFile(const std::string& name,
                                         const rocksdb::IOOptions& options,
                                         rocksdb::IODebugContext* dbg) {
  if (power_fails()) return power_off(name);
  std::string path = normal(name);
  std::lock_guard<std::mutex> lock(mu_);
  rocksdb::IOStatus s = target()->DeleteFile(name, options, dbg);
  if (!s.ok()) return s;
  files_.erase(path);
  auto e = entries_.find(path);
  if (e != entries_.end() && !e->second.backup) entries_.erase(e);
  return s;
}

std::string PowerCutFs::settle() {
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  for (auto& [path, entry] : entries_) {
    if (entry.backup) {
      fs::rename(*entry.backup, path, ec);
    } else {
      fs::remove(path, ec);
    }
    if (ec) return "cannot undo " + path + ": " + ec.message();
    files_.erase(path);
  }
  entries_.clear();
  for (auto& [path, file] : files_) {
    if (!fs::exists(path, ec)) continue;
    if (fs::file_size(path, ec) > file.synced)
      fs::resize_file(path, file.synced, ec);
    if (ec) return "cannot cut " + path + " back: " + ec.message();
  }
  files_.clear();
  return "";
}

}  // namespace tern::test
