// tern-bench: load generator and latency recorder for the Tern broker.
// See `tern-bench --help`, and bench/run.sh for the standard scenarios.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bench.h"
#include "latency_out.h"
#include "options.h"
#include "report.h"
#include "tern/client.h"

int main(int argc, char** argv) {
  tern::bench::Options options;
  int status = tern::bench::parse_options(argc, argv, &options);
  if (status >= 0) return status;

  // Opened before the run, so that a bad path fails at once, not after it.
  const std::string& latency_path = options.latency_out;
  FILE* latency_file = nullptr;
  if (!latency_path.empty()) {
    latency_file = std::fopen(latency_path.c_str(), "w");
    if (!latency_file) {
      std::fprintf(stderr, "tern-bench: --latency-out %s: %s\n",
                   latency_path.c_str(), std::strerror(errno));
      return 2;
    }
  }

  tern::bench::Results results;
  try {
    tern::bench::Bench bench(options);
    results = bench.run();
  } catch (const tern::Error& e) {
    std::fprintf(stderr, "tern-bench: %s\n", e.what());
    if (latency_file) {
      // Nothing was measured: leave no empty file behind to be plotted.
      std::fclose(latency_file);
      std::remove(latency_path.c_str());
    }
    return 1;
  }

  if (options.json) {
    tern::bench::print_json(options, results, stdout);
  } else {
    tern::bench::print_report(options, results, stdout);
  }
  std::fflush(stdout);
  if (latency_file) {
    // Written even for a failed run: its latencies may show why.
    bool written =
        tern::bench::write_latency_json(options, results, latency_file);
    if (std::fclose(latency_file) != 0 || !written) {
      std::fprintf(stderr, "tern-bench: cannot write --latency-out %s\n",
                   latency_path.c_str());
      return 1;
    }
  }
  if (!results.ok()) {
    std::fprintf(stderr, "tern-bench: FAILED: %s\n",
                 !results.error.empty()   ? results.error.c_str()
                 : results.lost > 0       ? "messages lost"
                 : results.duplicates > 0 ? "duplicate deliveries"
                                          : "publish errors");
    if (results.lost > 0 || results.duplicates > 0) {
      // After an error the run was cut short: what had not arrived yet is
      // not evidence of loss.
      std::fprintf(stderr,
                   "tern-bench: %llu %s, %llu duplicates (of %llu due)\n",
                   (unsigned long long)results.lost,
                   results.error.empty() || !results.drained
                       ? "lost"
                       : "not delivered before the run stopped",
                   (unsigned long long)results.duplicates,
                   (unsigned long long)results.expected);
    }
    return 1;
  }
  return 0;
}
