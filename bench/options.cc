#include "options.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "payload.h"

namespace tern::bench {
namespace {

const char kUsage[] =
    "usage: tern-bench [options]\n"
    "Publishes and consumes through a Tern broker, checks that every message\n"
    "arrives exactly once, and reports throughput and latency.\n"
    "\n"
    "  --server HOST:PORT   broker address (default 127.0.0.1:7411)\n"
    "  --topic NAME         topic base name (default bench); a run id is\n"
    "                       appended, and -0, -1, ... with --topics > 1\n"
    "  --fixed-topic        use --topic as given, without the run id\n"
    "  --producers N        producer connections/threads (default 1)\n"
    "  --consumers M        consumer connections/threads (default 1); spread\n"
    "                       round-robin over all subscriptions, so M must be\n"
    "                       >= subscriptions x topics\n"
    "  --subscriptions S    durable subscriptions per topic (default 1); each\n"
    "                       gets every message of its topic (fan-out)\n"
    "  --topics T           topics (default 1); producer i publishes to topic\n"
    "                       i mod T, so N must be >= T\n"
    "  --size BYTES         payload size (default 256, min 24)\n"
    "  --count N            messages over all producers (default 100000)\n"
    "  --duration SECONDS   publish for this long (then --count is a limit\n"
    "                       only if given too)\n"
    "  --rate MSGS_PER_S    total publish rate, split over the producers\n"
    "                       (default 0: as fast as possible)\n"
    "  --window N           max unconfirmed messages per producer (default "
    "1000)\n"
    "  --batch N            messages per publish frame (default 1)\n"
    "  --prefetch N         max unacked messages per consumer (default 1000)\n"
    "  --no-confirm         publish without confirms (no window, no confirm\n"
    "                       latency)\n"
    "  --no-ack             never ack; prefetch is raised to the message "
    "count\n"
    "                       (at most 1,000,000) so delivery does not stall,\n"
    "                       and the ack timeout to 24 h\n"
    "  --replay             start the consumers only once everything is\n"
    "                       published: they read it back from the store;\n"
    "                       delivery is timed from their start, and there\n"
    "                       is no end-to-end latency\n"
    "  --warmup SECONDS     messages sent in the first SECONDS are checked "
    "but\n"
    "                       left out of throughput and latency (default 0)\n"
    "  --drain-timeout S    after the last confirm, wait at most S seconds "
    "for\n"
    "                       the last deliveries (default 30)\n"
    "  --stall-timeout S    fail if nothing moves for S seconds (default 30)\n"
    "  --quiet              no progress lines on stderr\n"
    "  --json               print one JSON object instead of the report\n"
    "  --help               show this help\n"
    "\n"
    "Exit status: 0 if every confirmed message reached every subscription\n"
    "exactly once, 1 on loss, duplicates or errors, 2 on bad usage.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tern-bench: %s\n(see tern-bench --help)\n",
               message.c_str());
  return 2;
}

bool parse_uint(const char* text, uint64_t min, uint64_t max, uint64_t* out) {
  if (*text == '\0' || *text == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

bool parse_seconds(const char* text, double* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1e7)
    return false;
  *out = v;
  return true;
}

}  // namespace

int parse_options(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    // Flags without a value.
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag == "--no-confirm") {
      o->confirm = false;
      continue;
    }
    if (flag == "--no-ack") {
      o->ack = false;
      continue;
    }
    if (flag == "--replay") {
      o->replay = true;
      continue;
    }
    if (flag == "--json") {
      o->json = true;
      continue;
    }
    if (flag == "--quiet") {
      o->progress = false;
      continue;
    }
    if (flag == "--fixed-topic") {
      o->fixed_topic = true;
      continue;
    }
    static const char* const kWithValue[] = {
        "--server",        "--topic",  "--producers",     "--consumers",
        "--subscriptions", "--topics", "--size",          "--count",
        "--duration",      "--rate",   "--window",        "--batch",
        "--prefetch",      "--warmup", "--drain-timeout", "--stall-timeout"};
    bool known = false;
    for (const char* f : kWithValue) known = known || flag == f;
    if (!known) return usage_error("unknown option " + flag);
    if (i + 1 >= argc) return usage_error("missing value for " + flag);
    const char* value = argv[++i];
    std::string bad = "bad value '" + std::string(value) + "' for " + flag;
    uint64_t n = 0;
    if (flag == "--server") {
      o->server = value;
    } else if (flag == "--topic") {
      if (*value == '\0') return usage_error(bad);
      o->topic = value;
    } else if (flag == "--producers" || flag == "--consumers" ||
               flag == "--subscriptions" || flag == "--topics") {
      if (!parse_uint(value, 1, 1024, &n))
        return usage_error(bad + " (want 1..1024)");
      int& field = flag == "--producers"   ? o->producers
                   : flag == "--consumers" ? o->consumers
                   : flag == "--topics"    ? o->topics
                                           : o->subscriptions;
      field = int(n);
    } else if (flag == "--size") {
      if (!parse_uint(value, kHeaderBytes, 16u << 20, &n))
        return usage_error(bad + " (want " + std::to_string(kHeaderBytes) +
                           "..16777216)");
      o->size = size_t(n);
    } else if (flag == "--count") {
      if (!parse_uint(value, 1, uint64_t(1) << 40, &n)) return usage_error(bad);
      o->count = n;
      o->count_set = true;
    } else if (flag == "--duration") {
      if (!parse_seconds(value, &o->duration_s) || o->duration_s <= 0)
        return usage_error(bad);
    } else if (flag == "--rate") {
      if (!parse_seconds(value, &o->rate)) return usage_error(bad);
    } else if (flag == "--window") {
      if (!parse_uint(value, 1, 1u << 24, &n)) return usage_error(bad);
      o->window = size_t(n);
    } else if (flag == "--batch") {
      if (!parse_uint(value, 1, 65536, &n)) return usage_error(bad);
      o->batch = size_t(n);
    } else if (flag == "--prefetch") {
      if (!parse_uint(value, 1, 1000000, &n))
        return usage_error(bad + " (want 1..1000000)");
      o->prefetch = uint32_t(n);
    } else if (flag == "--warmup") {
      if (!parse_seconds(value, &o->warmup_s)) return usage_error(bad);
    } else if (flag == "--drain-timeout") {
      if (!parse_seconds(value, &o->drain_timeout_s)) return usage_error(bad);
    } else {  // --stall-timeout
      if (!parse_seconds(value, &o->stall_timeout_s) || o->stall_timeout_s <= 0)
        return usage_error(bad);
    }
  }

  if (o->producers < o->topics)
    return usage_error(
        "--producers must be >= --topics (every topic needs "
        "a producer)");
  if (uint32_t(o->consumers) < o->subscriptions_total())
    return usage_error(
        "--consumers must be >= --subscriptions x --topics "
        "(every subscription needs a consumer)");
  if (o->duration_s == 0 && o->count < uint64_t(o->producers))
    return usage_error("--count must be >= --producers");
  if (o->duration_s > 0 && !o->count_set)
    o->count = std::numeric_limits<uint64_t>::max();
  if (o->batch > o->window && o->confirm)
    return usage_error("--batch must not exceed --window");
  return -1;
}

}  // namespace tern::bench
