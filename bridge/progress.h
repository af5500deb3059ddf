// A route's progress line, every `interval`: "12000 records (400/s)".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tern::bridge {

class Progress {
 public:
  explicit Progress(std::chrono::milliseconds interval)
      : interval_(interval), last_(std::chrono::steady_clock::now()) {}

  bool due() const {
    return std::chrono::steady_clock::now() - last_ >= interval_;
  }

  // `total` records so far, and the rate since the last report.
  std::string report(uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_).count();
    uint64_t rate = seconds > 0 ? uint64_t((total - last_total_) / seconds) : 0;
    last_ = now;
    last_total_ = total;
    return std::to_string(total) + " records (" + std::to_string(rate) + "/s)";
  }

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_;
  uint64_t last_total_ = 0;
};

}  // namespace tern::bridge
