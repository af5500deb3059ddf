// Stats: what the broker looks like at one moment, for the HTTP side
// (metrics, health). The loop thread takes one about once a second
// (Broker::take_stats) and hands it over whole; the HTTP threads only ever
// read such a snapshot, never the loop's own state, so a slow or hostile
// HTTP client cannot hold up message traffic.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "metric_histogram.h"

namespace tern {

// The broker's version, as /metrics reports it (tern_build_info).
inline constexpr char kVersion[] = "0.1.0";

struct SubscriptionStats {
  std::string name;  // empty: ephemeral
  uint64_t consumers = 0;
  uint64_t lag = 0;      // committed messages not acked yet
  uint64_t pending = 0;  // delivered, waiting for an ack
  uint64_t waiting = 0;  // taken back, to be delivered again
  // Counters since the broker started (Subscription::Counters).
  uint64_t delivered = 0;
  uint64_t redelivered = 0;
  uint64_t acked = 0;
  uint64_t nacked = 0;
  uint64_t dead_lettered = 0;
  uint64_t expired = 0;
  // Over the second before the snapshot (0 in the first one).
  double delivered_per_s = 0;
  double acked_per_s = 0;
};

struct TopicStats {
  std::string name;
  uint64_t appended_messages = 0;  // since the broker started
  uint64_t appended_bytes = 0;
  uint64_t stored_messages = 0;
  uint64_t stored_bytes = 0;
  uint64_t removed_messages = 0;  // by retention, since the broker started
  uint64_t removed_bytes = 0;
  uint64_t memory_bytes = 0;  // its tail and what was read back
  uint64_t scheduled_messages = 0;  // stored, to be appended when due
  double appended_per_s = 0;  // over the second before the snapshot
  std::vector<SubscriptionStats> subscriptions;
};

struct ConnectionStats {
  uint64_t id = 0;
  std::string peer;  // address:port
  std::string client_name;
  std::string user;  // empty: the broker has no users (or no Hello yet)
  bool tls = false;
  uint64_t bytes_in = 0;  // since it was accepted
  uint64_t bytes_out = 0;
  uint64_t output_waiting = 0;  // queued, not written yet
  double bytes_in_per_s = 0;    // over the second before the snapshot
  double bytes_out_per_s = 0;
};

struct Stats {
  int64_t taken_ms = 0;  // wall clock
  int64_t started_ms = 0;
  bool fsync = true;
  // Storage: empty when writable, else why not (a fault being recovered).
  std::string storage_fault;
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // by --max-connections(-per-ip)
  uint64_t dedupe_entries = 0;       // ids and sequence runs held
  uint64_t memory_budget = 0;
  uint64_t memory_cached = 0;  // topics' tails and read-back records
  uint64_t memory_output = 0;  // queued for clients
  // --metrics-topics: how many topics get series of their own on /metrics
  // (the rest are summed), so that thousands of topics cannot swamp a
  // Prometheus server.
  uint64_t metrics_topics = 0;
  std::vector<TopicStats> topics;  // by name
  std::vector<ConnectionStats> connection_list;  // open now
  // Since the broker started: frames received by type, Error frames sent
  // by code (names as in tern.fbs).
  std::map<std::string, uint64_t> frames_received;
  std::map<std::string, uint64_t> errors_sent;
  MetricHistogram commit_writes;   // writes per commit
  MetricHistogram commit_seconds;  // commit duration, fsync included
  // RocksDB, over all column families (its property names, without the
  // "rocksdb." prefix): memtables, SST files, pending compaction, stalls.
  std::map<std::string, uint64_t> rocksdb;
};

}  // namespace tern
