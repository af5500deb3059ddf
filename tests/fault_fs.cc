#include "fault_fs.h"

#include <pthread.h>

namespace tern::test {

namespace {

rocksdb::IOStatus injected(const char* what, const std::string& file) {
  return rocksdb::IOStatus::IOError(
      std::string("injected ") + what + " failure", file);
}

// A file being written, whose writes and syncs may be made to fail.
class FaultyFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultFs& fs,
             std::string name)
      : FSWritableFileOwnerWrapper(std::move(file)),
        fs_(fs),
        name_(std::move(name)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_.should_fail(FaultFs::kWrite, name_))
      return injected("write", name_);
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_.should_fail(FaultFs::kWrite, name_))
      return injected("write", name_);
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_.should_fail(FaultFs::kWrite, name_))
      return injected("write", name_);
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options,
                                                        dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_.should_fail(FaultFs::kWrite, name_))
      return injected("write", name_);
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options,
                                                        info, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    if (fs_.should_fail(FaultFs::kSync, name_)) return injected("sync", name_);
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (fs_.should_fail(FaultFs::kSync, name_)) return injected("sync", name_);
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }

 private:
  FaultFs& fs_;
  const std::string name_;
};

}  // namespace

FaultFs::FaultFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

void FaultFs::fail(Op op, std::string name_part, std::string thread_part) {
  std::lock_guard<std::mutex> lock(mu_);
  active_ = true;
  op_ = op;
  name_part_ = std::move(name_part);
  thread_part_ = std::move(thread_part);
}

void FaultFs::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  active_ = false;
}

bool FaultFs::should_fail(Op op, const std::string& file) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!active_ || op != op_ || file.find(name_part_) == std::string::npos)
    return false;
  if (!thread_part_.empty()) {
    char name[64] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    if (std::string(name).find(thread_part_) == std::string::npos) return false;
  }
  ++failures_;
  return true;
}

rocksdb::IOStatus FaultFs::NewWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  if (should_fail(kCreate, name)) return injected("create", name);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = target()->NewWritableFile(name, options, &file, dbg);
  if (s.ok()) result->reset(new FaultyFile(std::move(file), *this, name));
  return s;
}

rocksdb::IOStatus FaultFs::RenameFile(const std::string& from,
                                      const std::string& to,
                                      const rocksdb::IOOptions& options,
                                      rocksdb::IODebugContext* dbg) {
  if (should_fail(kRename, to)) return injected("rename", to);
  return target()->RenameFile(from, to, options, dbg);
}

}  // namespace tern::test
