// A small file system of a test's own (a tmpfs), to fill up without harming
// anything else, and to give the space back. Mounting needs root, as make
// test has on the CI machine and a fresh Debian; without it mounted() is
// false and the test picks another way (or skips).
#pragma once

#include <cstdint>
#include <string>

#include "broker_process.h"

namespace tern::test {

class SmallDisk {
 public:
  explicit SmallDisk(const char* size = "400m");
  ~SmallDisk();
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  bool mounted() const { return mounted_; }
  // Where it is mounted (a plain temporary directory if it is not).
  const std::string& path() const { return path_; }
  // A broker with its data here that refuses writes below 150 MiB free.
  BrokerOptions broker_options() const;
  // Takes space until 100 MiB are left: a full disk to that broker. False
  // on failure.
  bool fill();
  // Gives back what fill() took.
  void empty();

 private:
  std::string path_;
  std::string filler_;
  bool mounted_ = false;
};

}  // namespace tern::test
