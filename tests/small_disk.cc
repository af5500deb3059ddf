#include "small_disk.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace tern::test {

SmallDisk::SmallDisk(const char* size)
    : path_(make_temp_dir("tern-small-disk")), filler_(path_ + "/filler") {
  std::string options = std::string("size=") + size;
  mounted_ = mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) == 0;
}

SmallDisk::~SmallDisk() {
  if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  remove_tree(path_);
}

BrokerOptions SmallDisk::broker_options() const {
  BrokerOptions options;
  options.data_dir = path_ + "/data";
  options.extra_args = {"--min-free", "150MiB"};
  return options;
}

bool SmallDisk::fill() {
  const uint64_t leave = 100ull << 20;
  struct statvfs fs;
  if (statvfs(path_.c_str(), &fs) != 0) return false;
  uint64_t free_bytes = uint64_t(fs.f_bavail) * fs.f_frsize;
  if (free_bytes <= leave) return true;
  int fd = open(filler_.c_str(), O_CREAT | O_WRONLY, 0644);
  if (fd < 0) return false;
  bool ok = posix_fallocate(fd, 0, off_t(free_bytes - leave)) == 0;
  close(fd);
  return ok;
}

void SmallDisk::empty() { unlink(filler_.c_str()); }

}  // namespace tern::test
