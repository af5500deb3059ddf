// The outcome of a run and its two renderings: a readable report, and one
// JSON object for scripts (bench/run.sh reads it).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "histogram.h"
#include "options.h"

namespace tern::bench {

struct Results {
  std::string run_id;
  std::vector<std::string> topics;
  uint32_t prefetch = 0;  // as subscribed (raised by --no-ack)

  uint64_t sent = 0;            // messages handed to publish
  uint64_t published = 0;       // confirmed without error (sent, --no-confirm)
  uint64_t publish_errors = 0;  // confirmed with an error
  uint64_t expected = 0;        // deliveries due: each subscription, each msg
  uint64_t delivered = 0;       // distinct (subscription, message) received
  uint64_t deliveries = 0;      // everything received, redeliveries included
  uint64_t lost = 0;
  uint64_t duplicates = 0;
  uint64_t redelivered = 0;
  std::vector<std::string> lost_examples;  // "subscription producer/seq"

  // The measured part (after the warmup): throughput is counted from the
  // first measured publish to the last confirm, resp. the last delivery.
  uint64_t measured_published = 0;
  uint64_t measured_deliveries = 0;
  double publish_seconds = 0;
  double deliver_seconds = 0;
  double elapsed_seconds = 0;  // the whole run, setup excluded
  double publish_msgs_per_s = 0, publish_mb_per_s = 0;
  double deliver_msgs_per_s = 0, deliver_mb_per_s = 0;
  // Latencies in nanoseconds: publish to delivery (none for a replay, whose
  // messages waited for the whole publish phase) and publish to confirm.
  Histogram e2e, confirm;

  bool drained = true;  // everything arrived within --drain-timeout
  std::string error;    // the first error, if any

  bool ok() const {
    return error.empty() && lost == 0 && duplicates == 0 &&
           publish_errors == 0 && drained;
  }
};

void print_report(const Options& options, const Results& results, FILE* out);
void print_json(const Options& options, const Results& results, FILE* out);

// `s` as a JSON string literal, quotes included.
std::string json_string(const std::string& s);

}  // namespace tern::bench
