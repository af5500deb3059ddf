#include "config.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "log.h"

namespace tern {

namespace {

const char kUsage[] =
    "usage: tern-broker [options]\n"
    "  --listen HOST:PORT     address to listen on (default 127.0.0.1:7411;\n"
    "                         IPv6 as [::1]:7411)\n"
    "  --data DIR             data directory (default ./data)\n"
    "  --fsync always|never   fsync before confirming publishes (default "
    "always)\n"
    "  --max-frame BYTES      largest frame accepted or sent; a publish\n"
    "                         frame may take 4KiB less (default 16MiB)\n"
    "  --max-output BYTES     output queued for one client before it is\n"
    "                         disconnected (default 64MiB)\n"
    "  --max-connections N    (default 4096)\n"
    "  --max-topics N         (default 10000)\n"
    "  --max-subscriptions N  durable and ephemeral (default 100000)\n"
    "  --min-free BYTES       publishes fail while the data directory's disk\n"
    "                         has less free space (default 128MiB; 0: off)\n"
    "  --ack-timeout MS       default ack timeout of subscriptions (default "
    "30000)\n"
    "  --dedupe-window MS     how long a producer message id is remembered\n"
    "                         per topic (default 120000)\n"
    "  --max-dedupe-ids N     producer message ids remembered at once, over\n"
    "                         all topics; beyond, publishes with a new id\n"
    "                         get LimitExceeded (default 10000000)\n"
    "  --retention-interval MS  how often topic retention runs (default "
    "1000)\n"
    "  --tail-bytes BYTES     recent messages kept in memory per topic; older\n"
    "                         ones are read back from disk (default 32MiB)\n"
    "  --log-level LEVEL      debug|info|warn|error (default info)\n"
    "  --help                 show this help\n"
    "BYTES may end in KiB, MiB or GiB.\n";

bool parse_number(const char* text, uint64_t max, uint64_t* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max || text[0] == '-') return false;
  *out = v;
  return true;
}

// A byte count with an optional binary suffix: 512, 64KiB, 16MiB, 1GiB.
bool parse_bytes(const char* text, uint64_t max, uint64_t* out) {
  std::string digits(text);
  uint64_t unit = 1;
  for (auto [suffix, size] : {std::pair<const char*, uint64_t>{"KiB", 1ull << 10},
                              {"MiB", 1ull << 20},
                              {"GiB", 1ull << 30}}) {
    size_t n = std::strlen(suffix);
    if (digits.size() > n && digits.compare(digits.size() - n, n, suffix) == 0) {
      digits.resize(digits.size() - n);
      unit = size;
    }
  }
  uint64_t v;
  if (!parse_number(digits.c_str(), max / unit, &v)) return false;
  *out = v * unit;
  return true;
}

bool parse_listen(const std::string& text, Config* config) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  uint64_t port;
  if (host.empty() || !parse_number(text.c_str() + colon + 1, 65535, &port))
    return false;
  config->listen_host = host;
  config->listen_port = int(port);
  return true;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tern-broker: %s\n%s", message.c_str(), kUsage);
  return 2;
}

}  // namespace

int parse_config(int argc, char** argv, Config* config) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return usage_error("missing value for " + flag);
    const char* value = argv[++i];
    uint64_t n;
    if (flag == "--listen") {
      if (!parse_listen(value, config))
        return usage_error(std::string("bad --listen address '") + value +
                           "' (want HOST:PORT)");
    } else if (flag == "--data") {
      config->data_dir = value;
    } else if (flag == "--fsync") {
      if (std::strcmp(value, "always") == 0)
        config->fsync = true;
      else if (std::strcmp(value, "never") == 0)
        config->fsync = false;
      else
        return usage_error(std::string("bad --fsync '") + value +
                           "' (want always or never)");
    } else if (flag == "--max-frame") {
      if (!parse_bytes(value, 1u << 30, &n) || n < (64u << 10))
        return usage_error("bad --max-frame (want 64KiB..1GiB)");
      config->max_frame_bytes = uint32_t(n);
    } else if (flag == "--max-output") {
      if (!parse_bytes(value, 1ull << 40, &n) || n < (1u << 20))
        return usage_error("bad --max-output (want at least 1MiB)");
      config->max_output_bytes = n;
    } else if (flag == "--max-connections") {
      if (!parse_number(value, 1000000, &n) || n == 0)
        return usage_error("bad --max-connections (want 1..1000000)");
      config->max_connections = n;
    } else if (flag == "--max-topics") {
      if (!parse_number(value, 100000000, &n) || n == 0)
        return usage_error("bad --max-topics (want 1..100000000)");
      config->max_topics = n;
    } else if (flag == "--max-subscriptions") {
      if (!parse_number(value, 100000000, &n) || n == 0)
        return usage_error("bad --max-subscriptions (want 1..100000000)");
      config->max_subscriptions = n;
    } else if (flag == "--min-free") {
      if (!parse_bytes(value, 1ull << 50, &n))
        return usage_error("bad --min-free (want a byte count)");
      config->min_free_bytes = n;
    } else if (flag == "--ack-timeout") {
      if (!parse_number(value, 86400000, &n) || n == 0)
        return usage_error("bad --ack-timeout (want 1..86400000 ms)");
      config->default_ack_timeout_ms = uint32_t(n);
    } else if (flag == "--dedupe-window") {
      if (!parse_number(value, 7ull * 86400000, &n) || n == 0)
        return usage_error("bad --dedupe-window (want 1..604800000 ms)");
      config->dedupe_window_ms = n;
    } else if (flag == "--max-dedupe-ids") {
      if (!parse_number(value, 1000000000, &n))
        return usage_error("bad --max-dedupe-ids (want 0..1000000000)");
      config->max_dedupe_ids = n;
    } else if (flag == "--retention-interval") {
      if (!parse_number(value, 3600000, &n) || n < 10)
        return usage_error("bad --retention-interval (want 10..3600000 ms)");
      config->retention_interval_ms = n;
    } else if (flag == "--tail-bytes") {
      if (!parse_bytes(value, 1ull << 40, &n))
        return usage_error("bad --tail-bytes (want a byte count)");
      config->tail_bytes_per_topic = n;
    } else if (flag == "--log-level") {
      LogLevel level;
      if (!parse_log_level(value, &level))
        return usage_error("bad --log-level (want debug|info|warn|error)");
      set_log_level(level);
    } else {
      return usage_error("unknown option " + flag);
    }
  }
  return -1;
}

}  // namespace tern
