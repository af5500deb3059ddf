// Broker settings: defaults, and parsing them from the command line.
#pragma once

#include <cstdint>
#include <string>

namespace tern {

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 7411;
  std::string data_dir = "./data";
  bool fsync = true;                      // --fsync always|never
  uint32_t max_frame_bytes = 16u << 20;   // larger frames close the connection
  uint32_t default_ack_timeout_ms = 30000;
  uint64_t dedupe_window_ms = 120000;     // producer message ids remembered
  size_t max_dedupe_ids = 10000000;       // over all topics (~150 B each)
  uint64_t retention_interval_ms = 1000;  // how often retention runs
  size_t tail_bytes_per_topic = 32u << 20;  // recent messages kept in memory
  // Limits that keep one client, or many, from taking the broker down.
  size_t max_output_bytes = 64u << 20;    // queued for one client, then close
  size_t max_connections = 4096;
  size_t max_topics = 10000;
  size_t max_subscriptions = 100000;      // durable and ephemeral, all topics
  uint64_t min_free_bytes = 128ull << 20; // publishes fail below this
};

// Parses argv into *config. On --help prints usage and returns 0;
// on a bad argument prints the error and usage to stderr and returns 2.
// Returns -1 when the broker should start.
int parse_config(int argc, char** argv, Config* config);

}  // namespace tern
