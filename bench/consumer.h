// Consumer: one connection and one thread reading one subscription, checking
// every message against the subscription's DeliveryCheck, recording its
// end-to-end latency and acking each message.
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

  const uint32_t id_;
  const Options& options_;
  RunControl& control_;
  DeliveryCheck& check_;
  std::unique_ptr<Client> client_;
  Subscription subscription_;
  std::thread thread_;

  Histogram e2e_latency_;
  uint64_t measured_deliveries_ = 0;
  int64_t last_delivery_ns_ = 0;
  alignas(64) std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> acked_{0};
};

}  // namespace tern::bench
