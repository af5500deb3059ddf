// tern-bench: load generator and latency recorder for the Tern broker.
// See `tern-bench --help`, and bench/run.sh for the standard scenarios.
#include <cstdio>

#include "bench.h"
#include "options.h"
#include "report.h"
#include "tern/client.h"

int main(int argc, char** argv) {
  tern::bench::Options options;
  int status = tern::bench::parse_options(argc, argv, &options);
  if (status >= 0) return status;

  tern::bench::Results results;
  try {
    tern::bench::Bench bench(options);
    results = bench.run();
  } catch (const tern::Error& e) {
    std::fprintf(stderr, "tern-bench: %s\n", e.what());
    return 1;
  }

  if (options.json) {
    tern::bench::print_json(options, results, stdout);
  } else {
    tern::bench::print_report(options, results, stdout);
  }
  std::fflush(stdout);
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
