// Producer: one connection and one thread publishing the bench's messages to
// one topic, pipelined up to the confirm window, in frames of --batch
// messages, paced if --rate is set.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "histogram.h"
#include "options.h"
#include "run_control.h"
#include "tern/client.h"

namespace tern::bench {

class Producer {
 public:
  // Publishes `quota` messages (sequence numbers 0..quota-1) to `topic`.
  Producer(uint32_t id, const Options& options, RunControl& control,
           std::string topic, uint64_t quota, std::unique_ptr<Client> client);
  ~Producer();

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Starts publishing: the first message goes out at start_ns at the
  // earliest, and none after stop_at_ns (0: no deadline).
  void start(int64_t start_ns, int64_t stop_at_ns);
  void join();
  // Closes the connection: a thread blocked on a full window wakes and fails.
  void close() { client_->close(); }

  // True once every message is sent and (with confirms) confirmed.
  bool finished() const { return finished_.load(); }

  // Progress counters: any thread, at any time.
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t confirmed() const {
    return confirmed_.load(std::memory_order_relaxed);
  }
  uint64_t failed_messages() const {
    return failed_.load(std::memory_order_relaxed);
  }

  // Figures: read only after join() and close() (the confirm callbacks run
  // on the client's reader thread, which close() joins).
  const Histogram& confirm_latency() const { return confirm_latency_; }
  uint64_t measured_confirmed() const { return measured_confirmed_; }
  // First send at or after the warmup, 0 if none; last confirm, 0 if none.
  int64_t first_measured_send_ns() const { return first_measured_send_ns_; }
  int64_t last_confirm_ns() const { return last_confirm_ns_; }

 private:
  void run(int64_t start_ns, int64_t stop_at_ns);
  void publish_batch(size_t n);
  // On the client's reader thread.
  void on_confirm(const std::vector<PublishResult>& results, int64_t sent_ns);
  // Sleeps until `when_ns`, waking early if the run stops.
  void sleep_until(int64_t when_ns) const;

  const uint32_t id_;
  const Options& options_;
  RunControl& control_;
  const std::string topic_;
  const uint64_t quota_;
  std::unique_ptr<Client> client_;
  std::thread thread_;
  // Copied into every payload, then its header is overwritten: the one copy
  // a message costs the bench.
  std::string filler_;
  uint64_t next_sequence_ = 0;

  // Written by the producer thread.
  int64_t first_measured_send_ns_ = 0;
  alignas(64) std::atomic<uint64_t> sent_{0};
  std::atomic<bool> finished_{false};
  // Written by the reader thread (confirm callbacks).
  alignas(64) std::atomic<uint64_t> confirmed_{0};
  std::atomic<uint64_t> failed_{0};
  Histogram confirm_latency_;
  uint64_t measured_confirmed_ = 0;
  int64_t last_confirm_ns_ = 0;
};

}  // namespace tern::bench
