// Bench: one run of tern-bench, start to finish.
//
//   1. Consumers connect and create fresh durable subscriptions (starting at
//      Latest) on fresh topics, before anything is published, so that every
//      subscription is due every message of its topic.
//   2. Producers connect, then all start at once; the main thread prints
//      progress every second and watches for stalls and failures.
//   3. Once every producer has its confirms, the run waits (at most
//      --drain-timeout) until every subscription has every message, stops the
//      consumers, and checks for lost and duplicate messages.
//
// With --consumers 0 step 1 makes nothing and the run ends at step 2's
// last confirm: a publish-only run, with nothing to check but the confirms.
// With --replay the consumers start only after step 2.
//
// Each producer and each consumer has its own Client (own TCP connection) and
// its own thread; each keeps its own counters and histograms, merged here at
// the end, so the threads share nothing on the hot path but the mutex of
// their subscription's DeliveryCheck.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "consumer.h"
#include "delivery_check.h"
#include "options.h"
#include "producer.h"
#include "report.h"
#include "run_control.h"

namespace tern::bench {

class Bench {
 public:
  explicit Bench(const Options& options);
  ~Bench();

  // Runs it. Throws tern::Error if setting up fails (broker unreachable, a
  // subscribe refused); failures during the run end up in Results::error.
  Results run();

 private:
  void set_up();
  // Options for one of the run's clients, logged in if --user says so.
  ClientOptions client_options(const std::string& name) const;
  // Returns once the run is over, one way or another.
  void watch(int64_t start_ns);
  void print_progress(double elapsed_s, double interval_s);
  void tear_down();
  Results collect(int64_t start_ns) const;
  bool all_delivered() const;
  void start_consumers(int64_t now);

  Options options_;  // own copy: the threads keep references to it
  RunControl control_;
  std::string run_id_;
  std::vector<std::string> topics_;
  uint32_t prefetch_ = 0;
  std::chrono::milliseconds ack_timeout_{0};
  bool drained_ = true;
  int64_t consumers_started_ns_ = 0;

  std::vector<std::unique_ptr<DeliveryCheck>> checks_;  // one a subscription
  std::vector<std::unique_ptr<Consumer>> consumers_;
  std::vector<std::unique_ptr<Producer>> producers_;

  // Progress line state.
  uint64_t last_published_ = 0;
  uint64_t last_delivered_ = 0;
};

}  // namespace tern::bench
