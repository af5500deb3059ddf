// Consumer: one connection and one thread reading one subscription, checking
// every message against the subscription's DeliveryCheck, recording its
// end-to-end latency and acking in batches.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "delivery_check.h"
#include "histogram.h"
#include "options.h"
#include "run_control.h"
#include "tern/client.h"

namespace tern::bench {

class Consumer {
 public:
  Consumer(uint32_t id, const Options& options, RunControl& control,
           DeliveryCheck& check, std::unique_ptr<Client> client,
           Subscription subscription);
  ~Consumer();

  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  void start();
  // Returns once the thread has acked what it holds and unsubscribed, which
  // it does soon after RunControl::set_stop_consumers().
  void join();
  void close() { client_->close(); }

  // Progress counters: any thread, at any time.
  uint64_t delivered() const {
    return delivered_.load(std::memory_order_relaxed);
  }
  uint64_t acked() const { return acked_.load(std::memory_order_relaxed); }

  // Figures: read only after join().
  const Histogram& e2e_latency() const { return e2e_latency_; }
  uint64_t measured_deliveries() const { return measured_deliveries_; }
  int64_t last_delivery_ns() const { return last_delivery_ns_; }

 private:
  void run();
  void handle(const Message& message);
  // Acks the current run of offsets, if any.
  void ack_pending();

  const uint32_t id_;
  const Options& options_;
  RunControl& control_;
  DeliveryCheck& check_;
  std::unique_ptr<Client> client_;
  Subscription subscription_;
  std::thread thread_;

  // The offsets received since the last ack, as one range [first, last]
  // (see handle() for why one range is enough).
  bool pending_ = false;
  uint64_t pending_first_ = 0;
  uint64_t pending_last_ = 0;
  uint64_t pending_count_ = 0;

  Histogram e2e_latency_;
  uint64_t measured_deliveries_ = 0;
  int64_t last_delivery_ns_ = 0;
  alignas(64) std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> acked_{0};
};

}  // namespace tern::bench
