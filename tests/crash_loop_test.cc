// The short crash loop, part of `make test`: a few kill -9 cycles under load
// (see crash_loop.h). `make crash-test` runs the long one.
#include "crash_loop.h"

#include <doctest/doctest.h>

namespace tern::test {

TEST_CASE("crash loop: short") {
  CrashLoopOptions defaults;
  defaults.iterations = 5;
  defaults.time_budget = std::chrono::seconds(60);
  // CRASH_SEED reproduces a failing run's kill times (CRASH_ITERATIONS is
  // only for the long run).
  CrashLoopOptions options = crash_loop_options_from_env(defaults);
  options.iterations = defaults.iterations;

  CrashLoopReport report = run_crash_loop(options);
  MESSAGE(report.summary());
  for (const auto& violation : report.violations) FAIL_CHECK(violation);
  CHECK(report.iterations == options.iterations);
  CHECK(report.confirmed > 0);
  CHECK(report.delivered > 0);
  // The barrier found committed acks, so "no redelivery after a committed
  // ack" was really checked.
  CHECK(report.acks_committed > 0);
  CHECK(report.lost == 0);
  CHECK(report.undelivered == 0);
  CHECK(report.log_messages >= report.confirmed);
}

}  // namespace tern::test
