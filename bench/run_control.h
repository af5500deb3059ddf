// RunControl: what the threads of one run share besides their own counters:
// the clock origin, the stop signals and the first error.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace tern::bench {

class RunControl {
 public:
  // Messages sent at or after this steady_clock time (ns) count in the
  // throughput and latency figures; earlier ones are warmup. Set once, before
  // the producers start.
  int64_t measure_from_ns = 0;

  // Producers stop publishing (end of the run or a failure elsewhere).
  bool stop_producers() const { return stop_producers_.load(); }
  void set_stop_producers() { stop_producers_.store(true); }
  // Consumers ack what they hold and return.
  bool stop_consumers() const { return stop_consumers_.load(); }
  void set_stop_consumers() { stop_consumers_.store(true); }

  // Records the first error and stops everything. Any thread.
  void fail(const std::string& error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.empty()) error_ = error;
    }
    failed_.store(true);
    set_stop_producers();
    set_stop_consumers();
  }
  bool failed() const { return failed_.load(); }
  std::string error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  std::atomic<bool> stop_producers_{false};
  std::atomic<bool> stop_consumers_{false};
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

}  // namespace tern::bench
