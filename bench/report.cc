#include "report.h"

#include <cinttypes>
#include <string>

namespace tern::bench {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

namespace {

double us(uint64_t ns) { return double(ns) / 1000.0; }

// Latency percentiles in microseconds.
struct Latency {
  uint64_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;

  explicit Latency(const Histogram& ns)
      : count(ns.count()),
        p50(us(ns.percentile(0.50))),
        p90(us(ns.percentile(0.90))),
        p99(us(ns.percentile(0.99))),
        p999(us(ns.percentile(0.999))),
        max(us(ns.max())),
        mean(ns.mean() / 1000.0) {}
};

std::string json_latency(const Histogram& ns) {
  Latency l(ns);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"count\":%" PRIu64
                ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
                "\"max\":%.1f,\"mean\":%.1f}",
                l.count, l.p50, l.p90, l.p99, l.p999, l.max, l.mean);
  return buf;
}

// `none` says why there may be no samples.
void print_latency(const char* what, const Histogram& ns, const char* none,
                   FILE* out) {
  Latency l(ns);
  if (l.count == 0) {
    std::fprintf(out, "  %-14s none%s\n", what, none);
    return;
  }
  std::fprintf(out,
               "  %-14s p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  "
               "(mean %.0f, %" PRIu64 " samples)\n",
               what, l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count);
}

// Per topic, as made: none when publishing only.
int subscriptions(const Options& o) {
  return o.publish_only() ? 0 : o.subscriptions;
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

}  // namespace

void print_report(const Options& o, const Results& r, FILE* out) {
  std::fprintf(out,
               "tern-bench run %s on %s%s: %d producer(s), %d consumer(s), "
               "%d subscription(s) x %d topic(s), %zu B, batch %zu, window "
               "%zu, prefetch %u%s%s%s\n",
               r.run_id.c_str(), r.topics.empty() ? "" : r.topics[0].c_str(),
               r.topics.size() > 1 ? ".." : "", o.producers, o.consumers,
               subscriptions(o), o.topics, o.size, o.batch, o.window,
               r.prefetch, o.confirm ? "" : ", no confirms",
               o.ack ? "" : ", no acks", o.replay ? ", replay" : "");
  std::fprintf(out,
               "  published      %" PRIu64
               " msgs in %.3f s: %.0f msgs/s, "
               "%.2f MB/s\n",
               r.measured_published, r.publish_seconds, r.publish_msgs_per_s,
               r.publish_mb_per_s);
  if (o.publish_only()) {
    std::fprintf(out, "  delivered      none: publish only (--consumers 0)\n");
  } else {
    // A replay's rate is the consumers' alone: they start once all is in.
    std::fprintf(out,
                 "  %-14s %" PRIu64
                 " msgs in %.3f s: %.0f msgs/s, "
                 "%.2f MB/s\n",
                 o.replay ? "consumed" : "delivered", r.measured_deliveries,
                 r.deliver_seconds, r.deliver_msgs_per_s, r.deliver_mb_per_s);
  }
  std::fprintf(out, "latency (us):\n");
  print_latency("end to end", r.e2e,
                o.publish_only() ? " (publish only)"
                : o.replay       ? " (replay)"
                                 : " measured",
                out);
  print_latency("confirm", r.confirm,
                o.confirm ? " measured" : " (no confirms)", out);
  if (o.publish_only()) {
    std::fprintf(out,
                 "check: publish only, nothing consumed, so no delivery "
                 "check; sent %" PRIu64 ", published %" PRIu64
                 ", publish errors %" PRIu64 "\n",
                 r.sent, r.published, r.publish_errors);
    std::fprintf(out, "result: %s\n", r.ok() ? "OK" : "FAILED");
    return;
  }
  std::fprintf(out,
               "check: sent %" PRIu64 ", published %" PRIu64
               ", expected "
               "deliveries %" PRIu64 ", delivered %" PRIu64 ", lost %" PRIu64
               ", duplicates %" PRIu64 ", redelivered %" PRIu64 "\n",
               r.sent, r.published, r.expected, r.delivered, r.lost,
               r.duplicates, r.redelivered);
  if (!r.lost_examples.empty()) {
    std::fprintf(out, "  lost, e.g.:");
    for (const std::string& e : r.lost_examples)
      std::fprintf(out, " %s", e.c_str());
    std::fprintf(out, "\n");
  }
  std::fprintf(out, "result: %s\n", r.ok() ? "OK" : "FAILED");
}

void print_json(const Options& o, const Results& r, FILE* out) {
  std::string topics = "[";
  for (size_t i = 0; i < r.topics.size(); ++i) {
    if (i > 0) topics += ",";
    topics += json_string(r.topics[i]);
  }
  topics += "]";
  std::string lost_examples = "[";
  for (size_t i = 0; i < r.lost_examples.size(); ++i) {
    if (i > 0) lost_examples += ",";
    lost_examples += json_string(r.lost_examples[i]);
  }
  lost_examples += "]";

  std::fprintf(out, "{");
  // Settings.
  std::fprintf(out,
               "\"run_id\":%s,\"server\":%s,\"topics\":%s,\"producers\":%d,"
               "\"consumers\":%d,\"subscriptions\":%d,\"topic_count\":%d,"
               "\"size\":%zu,",
               json_string(r.run_id).c_str(), json_string(o.server).c_str(),
               topics.c_str(), o.producers, o.consumers, subscriptions(o),
               o.topics, o.size);
  if (o.duration_s > 0 && !o.count_set) {
    std::fprintf(out, "\"count\":null,");
  } else {
    std::fprintf(out, "\"count\":%" PRIu64 ",", o.count);
  }
  std::fprintf(out,
               "\"duration_s\":%g,\"rate\":%g,\"window\":%zu,\"batch\":%zu,"
               "\"prefetch\":%u,\"confirm\":%s,\"ack\":%s,\"warmup_s\":%g,"
               "\"fixed_topic\":%s,\"drain_timeout_s\":%g,"
               "\"stall_timeout_s\":%g,\"replay\":%s,\"publish_only\":%s,",
               o.duration_s, o.rate, o.window, o.batch, r.prefetch,
               json_bool(o.confirm), json_bool(o.ack), o.warmup_s,
               json_bool(o.fixed_topic), o.drain_timeout_s, o.stall_timeout_s,
               json_bool(o.replay), json_bool(o.publish_only()));
  // Figures.
  std::fprintf(out,
               "\"sent\":%" PRIu64 ",\"published\":%" PRIu64
               ",\"publish_errors\":%" PRIu64 ",\"measured_published\":%" PRIu64
               ",\"publish_seconds\":%.6f,\"elapsed_seconds\":%.6f,"
               "\"publish_msgs_per_s\":%.1f,\"publish_mb_per_s\":%.3f,"
               "\"confirm_us\":%s,",
               r.sent, r.published, r.publish_errors, r.measured_published,
               r.publish_seconds, r.elapsed_seconds, r.publish_msgs_per_s,
               r.publish_mb_per_s, json_latency(r.confirm).c_str());
  if (o.publish_only()) {
    // Nothing was consumed: no delivery figure, and no check to pass.
    std::fprintf(out,
                 "\"expected\":null,\"delivered\":null,\"deliveries\":null,"
                 "\"lost\":null,\"duplicates\":null,\"redelivered\":null,"
                 "\"lost_examples\":null,\"measured_deliveries\":null,"
                 "\"deliver_seconds\":null,\"deliver_msgs_per_s\":null,"
                 "\"deliver_mb_per_s\":null,\"e2e_us\":null,");
  } else {
    std::fprintf(out,
                 "\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64
                 ",\"deliveries\":%" PRIu64 ",\"lost\":%" PRIu64
                 ",\"duplicates\":%" PRIu64 ",\"redelivered\":%" PRIu64
                 ",\"lost_examples\":%s,\"measured_deliveries\":%" PRIu64
                 ",\"deliver_seconds\":%.6f,\"deliver_msgs_per_s\":%.1f,"
                 "\"deliver_mb_per_s\":%.3f,\"e2e_us\":%s,",
                 r.expected, r.delivered, r.deliveries, r.lost, r.duplicates,
                 r.redelivered, lost_examples.c_str(), r.measured_deliveries,
                 r.deliver_seconds, r.deliver_msgs_per_s, r.deliver_mb_per_s,
                 json_latency(r.e2e).c_str());
  }
  std::fprintf(out, "\"drained\":%s,\"error\":%s,\"ok\":%s}\n",
               json_bool(r.drained),
               r.error.empty() ? "null" : json_string(r.error).c_str(),
               json_bool(r.ok()));
}

}  // namespace tern::bench
