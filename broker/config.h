// Broker settings: their defaults, and reading them from the command line
// and from a config file (tern.toml).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "log.h"
#include "permissions.h"

namespace tern {

// A user who may log in (the [users.NAME] tables of the config file), with
// one way to prove who it is at least.
struct User {
  std::string password_hash;  // argon2id, as tern-broker hash-password prints
  std::string token_hash;     // "sha256:HEX", as tern-broker hash-token prints
  std::string cert_subject;   // a client certificate's subject (mutual TLS)
  // The user's own rules; an action without them takes the default's.
  std::optional<Rules> publish, subscribe, admin;
  // May read /metrics (with its token: Authorization: Bearer TOKEN).
  bool monitor = false;
};

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 7411;
  // The HTTP endpoints (http_server.h); an empty host: none (--http off).
  std::string http_host = "127.0.0.1";
  int http_port = 7412;
  std::string data_dir = "./data";
  bool fsync = true;                     // --fsync always|never
  uint32_t max_frame_bytes = 16u << 20;  // larger frames close the connection
  uint32_t default_ack_timeout_ms = 30000;
  // A new subscription's backoff (SubscriptionSettings::retry_delays_ms):
  // a quick first retry for a passing fault, then slower, so that a poison
  // message takes minutes, not milliseconds, to use up max_deliveries.
  std::vector<uint32_t> retry_delays_ms{100, 1000, 5000, 30000};
  uint64_t dedupe_window_ms = 120000;       // producer message ids remembered
  size_t max_dedupe_ids = 10000000;         // over all topics (~150 B each)
  uint64_t retention_interval_ms = 1000;    // how often retention runs
  // What all topics' in-memory tails and all clients' queued output may
  // hold together (memory_budget.h); tail_bytes_per_topic and
  // max_output_bytes stay per-topic and per-connection caps within it.
  size_t memory_budget_bytes = 512u << 20;
  size_t tail_bytes_per_topic = 32u << 20;  // recent messages kept in memory
  // Limits that keep one client, or many, from taking the broker down.
  size_t max_output_bytes = 64u << 20;  // queued for one client, then close
  size_t max_connections = 4096;
  size_t max_connections_per_ip = 1024;  // from one client IP address
  // A connection that has not said Hello by then is closed.
  uint64_t hello_timeout_ms = 10000;
  // Serve clients beyond this host although nobody is authenticated: off,
  // a non-loopback listen address is refused (see protected_mode_error()).
  bool allow_anonymous = false;
  size_t max_topics = 10000;
  size_t metrics_topics = 1000;  // with series of their own on /metrics
  size_t max_subscriptions = 100000;       // durable and ephemeral, all topics
  uint64_t min_free_bytes = 128ull << 20;  // publishes fail below this
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kText;
  // TLS (tls.h): the certificate (PEM, chain included) and its key; both
  // empty: plaintext.
  std::string tls_cert;
  std::string tls_key;
  // Mutual TLS: clients must present a certificate signed by this CA (PEM).
  std::string tls_client_ca;
  // Empty: nobody logs in (and protected mode keeps the broker on loopback).
  std::map<std::string, User> users;
  // [default_permissions]: for what users do not say themselves.
  Permissions default_permissions;
};

// One setting, as the flag --NAME and as the config-file key NAME. Both go
// through `apply`, so a value means the same and is range-checked the same
// wherever it comes from.
struct Setting {
  // What a config file may give for it: a TOML string, a TOML integer,
  // either (sizes and durations: "16MiB" or 16777216), or a boolean (a flag
  // that takes no value on the command line).
  enum class FileType { kString, kInteger, kStringOrInteger, kBoolean };

  const char* name;
  const char* value_name;  // in --help: BYTES, MS, N, ...
  const char* help;
  FileType file_type;
  // Parses `text` into *config; false with *why saying what form it wants.
  std::function<bool(const std::string& text, Config* config, std::string* why)>
      apply;
  // The value in *config, in a form `apply` accepts.
  std::function<std::string(const Config& config)> show;
};

// Every setting, in --help order.
const std::vector<Setting>& settings();

// What `user` (one of config.users) may do: its own rules, and the default
// permissions for actions it has none for.
Permissions permissions_of(const Config& config, const std::string& user);

// Protected mode: with no users nobody is authenticated, so unless
// allow_anonymous is set, listening beyond loopback (127.0.0.0/8, ::1) is
// refused
// with this reason; empty if the config may start.
std::string protected_mode_error(const Config& config);

// Parses argv into *config, after the file named by --config if any, so that
// flags override the file. On --help prints usage and returns 0; on a bad
// flag, value or file prints one line to stderr and returns 2. Returns -1 when
// the broker should start.
int parse_config(int argc, char** argv, Config* config);

// The same command line and file read again (on SIGHUP): false, with *error
// one line, if they no longer make a valid configuration.
bool reread_config(int argc, char** argv, Config* config, std::string* error);

}  // namespace tern
