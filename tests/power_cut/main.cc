// tern-power-cut: the long simulated power-cut loop, run by `make
// power-cut-test` (tests/power_cut.h). POWER_CUT_ITERATIONS (default 300)
// cuts with sync (--fsync always), then a tenth as many without;
// POWER_CUT_SECONDS bounds each run (default 900); POWER_CUT_SEED replays
// one. Exits 1 if a promise broke.
#include <cstdio>
#include <cstdlib>

#include "../power_cut.h"

namespace {

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  return text && *text ? std::strtoull(text, nullptr, 10) : fallback;
}

bool run(tern::test::PowerCutOptions options, const char* label) {
  std::printf("%s: %d cut points, budget %.0f s\n", label, options.iterations,
              options.seconds);
  std::fflush(stdout);
  tern::test::PowerCutReport report = tern::test::run_power_cuts(options);
  std::printf("%s: %s\n", label, report.summary().c_str());
  for (const auto& v : report.violations)
    std::printf("  violation: %s\n", v.c_str());
  bool ok = report.violations.empty() &&
            report.iterations == options.iterations &&
            (!options.sync || (report.lost == 0 && report.cursors_behind == 0));
  std::printf("%s: %s\n", label, ok ? "PASSED" : "FAILED");
  return ok;
}

}  // namespace

int main() {
  tern::test::PowerCutOptions options;
  options.iterations = int(env_number("POWER_CUT_ITERATIONS", 300));
  options.seconds = double(env_number("POWER_CUT_SECONDS", 900));
  options.seed = env_number("POWER_CUT_SEED", 0);
  options.verbose = true;
  bool ok = run(options, "fsync always");
  options.sync = false;
  options.iterations = std::max(1, options.iterations / 10);
  ok = run(options, "fsync never") && ok;
  return ok ? 0 : 1;
}
