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
    "  --max-frame BYTES      largest frame accepted (default 16777216)\n"
    "  --ack-timeout MS       default ack timeout of subscriptions (default "
    "30000)\n"
    "  --log-level LEVEL      debug|info|warn|error (default info)\n"
    "  --help                 show this help\n";

bool parse_number(const char* text, uint64_t max, uint64_t* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max || text[0] == '-') return false;
  *out = v;
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
      if (!parse_number(value, 1u << 30, &n) || n < 1024)
        return usage_error("bad --max-frame (want 1024..1073741824)");
      config->max_frame_bytes = uint32_t(n);
    } else if (flag == "--ack-timeout") {
      if (!parse_number(value, 86400000, &n) || n == 0)
        return usage_error("bad --ack-timeout (want 1..86400000 ms)");
      config->default_ack_timeout_ms = uint32_t(n);
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
