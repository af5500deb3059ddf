// The settings of one tern-bench run, from the command line.
#pragma once

#include <cstdint>
#include <string>

#include "credentials.h"

namespace tern::bench {

struct Options {
  std::string server = "127.0.0.1:7411";
  // Credentials for a broker with users, never from the command line (see
  // cli/credentials.h): --user with $TERN_PASSWORD or --password-file, or a
  // token from $TERN_TOKEN or --token-file.
  cli::Login login;
  std::string password_file, token_file;
  // TLS (--tls, --tls-ca FILE, ...; see ClientOptions): any of them on
  // means TLS.
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  // Topic base name. Unless fixed_topic, a run id is appended so that reruns
  // against the same broker never mix; with topics > 1 each topic gets a
  // further "-0", "-1", ... suffix.
  std::string topic = "bench";
  bool fixed_topic = false;
  int producers = 1;
  // 0: publish only; no subscription is made and nothing is consumed, so
  // there are no delivery figures and no delivery check.
  int consumers = 1;
  int subscriptions = 1;  // per topic; each gets every message of its topic
  int topics = 1;
  size_t size = 256;  // payload bytes, >= kHeaderBytes
  // Total messages over all producers. With duration set as well, whichever
  // limit comes first ends the run; with only duration, count is unlimited.
  uint64_t count = 100000;
  bool count_set = false;
  double duration_s = 0;  // 0: run until count
  double rate = 0;        // msgs/s over all producers; 0: as fast as possible
  size_t window = 1000;   // max unconfirmed messages per producer
  size_t batch = 1;       // messages per Publish frame
  uint32_t prefetch = 1000;
  bool confirm = true;
  bool ack = true;
  // Consumers start only once everything is published, so they read it all
  // back from the broker's store; delivery is timed from their start.
  bool replay = false;
  double warmup_s = 0;  // excluded from throughput and latency figures
  bool json = false;
  // If set, the latency distributions are written there as JSON (see
  // latency_out.h).
  std::string latency_out;
  // Once the producers are done, how long to wait for the last deliveries.
  double drain_timeout_s = 30;
  // Give up if nothing is sent, confirmed or delivered for this long.
  double stall_timeout_s = 30;
  bool progress = true;

  bool publish_only() const { return consumers == 0; }
  // Subscriptions made: none when publishing only.
  uint32_t subscriptions_total() const {
    return publish_only() ? 0 : uint32_t(subscriptions) * uint32_t(topics);
  }
};

// Parses argv into *options. Returns -1 to go on, otherwise the exit status
// (0 after --help, 2 after a usage error, which it has printed).
int parse_options(int argc, char** argv, Options* options);

}  // namespace tern::bench
