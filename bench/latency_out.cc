#include "latency_out.h"

#include <cinttypes>
#include <string>

namespace tern::bench {
namespace {

// HdrHistogram's default for its percentile distribution: 5 points per
// halving of the tail gives a smooth curve on a log axis.
constexpr int kTicksPerHalf = 5;

// The report's fixed percentiles, as (key, fraction).
constexpr struct {
  const char* key;
  double q;
} kPercentiles[] = {{"0", 0},        {"50", 0.5},       {"75", 0.75},
                    {"90", 0.9},     {"95", 0.95},      {"99", 0.99},
                    {"99.9", 0.999}, {"99.99", 0.9999}, {"99.999", 0.99999},
                    {"100", 1}};

double us(uint64_t ns) { return double(ns) / 1000.0; }

void write_distribution(const Histogram& ns, FILE* out) {
  if (ns.count() == 0) {
    std::fputs("null", out);
    return;
  }
  std::fprintf(out,
               "{\"count\":%" PRIu64
               ",\"min\":%.3f,\"mean\":%.3f,\"max\":%.3f,"
               "\"percentiles\":{",
               ns.count(), us(ns.min()), ns.mean() / 1000.0, us(ns.max()));
  const char* sep = "";
  for (const auto& p : kPercentiles) {
    std::fprintf(out, "%s\"%s\":%.3f", sep, p.key, us(ns.percentile(p.q)));
    sep = ",";
  }
  std::fputs("},\n \"percentile_curve\":[", out);
  sep = "";
  for (const auto& [q, value] : ns.percentile_curve(kTicksPerHalf)) {
    // 12 digits keep 99.9990234375 and its neighbours apart.
    std::fprintf(out, "%s[%.12g,%.3f]", sep, q * 100, us(value));
    sep = ",";
  }
  std::fputs("],\n \"buckets\":[", out);
  sep = "";
  for (const auto& [highest, count] : ns.buckets()) {
    std::fprintf(out, "%s[%.3f,%" PRIu64 "]", sep, us(highest), count);
    sep = ",";
  }
  std::fputs("]}", out);
}

}  // namespace

bool write_latency_json(const Options& o, const Results& r, FILE* out) {
  std::fprintf(out,
               "{\"format\":\"tern-bench-latency/1\",\"unit\":\"us\","
               "\"run_id\":%s,\n\"settings\":{\"server\":%s,\"producers\":%d,"
               "\"consumers\":%d,\"subscriptions\":%d,\"topics\":%d,"
               "\"size\":%zu,\"batch\":%zu,\"window\":%zu,\"rate\":%g,"
               "\"duration_s\":%g,\"count\":%s,\"replay\":%s},\n\"e2e\":",
               json_string(r.run_id).c_str(), json_string(o.server).c_str(),
               o.producers, o.consumers, o.publish_only() ? 0 : o.subscriptions,
               o.topics, o.size, o.batch, o.window, o.rate, o.duration_s,
               // Only a duration given: no count.
               o.duration_s > 0 && !o.count_set
                   ? "null"
                   : std::to_string(o.count).c_str(),
               o.replay ? "true" : "false");
  write_distribution(r.e2e, out);
  std::fputs(",\n\"confirm\":", out);
  write_distribution(r.confirm, out);
  std::fputs("}\n", out);
  return std::fflush(out) == 0 && !std::ferror(out);
}

}  // namespace tern::bench
