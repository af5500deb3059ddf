// tern-crash-loop: the long crash loop, run by `make crash-test`.
//
// A doctest binary of its own (the crash loop uses BrokerProcess, which
// reports through doctest), kept out of tests/*.cc so `make test` stays short.
// Two loops: the classic one (producers retry by hand) and the one whose
// producers leave retries to the reconnecting client; each runs
// CRASH_ITERATIONS kills (default 50). CRASH_SEED (default random),
// CRASH_SECONDS (time budget of each, default 900), TERN_BROKER.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdio>

#include "../crash_loop.h"

namespace tern::test {

TEST_CASE("crash loop: long") {
  CrashLoopOptions defaults;
  defaults.iterations = 50;
  defaults.time_budget = std::chrono::seconds(900);
  defaults.verbose = true;
  CrashLoopOptions options = crash_loop_options_from_env(defaults);
  std::printf(
      "crash loop: %d iterations, seed %llu (0: random), budget %lld s\n",
      options.iterations, static_cast<unsigned long long>(options.seed),
      static_cast<long long>(options.time_budget.count()));
  std::fflush(stdout);

  CrashLoopReport report = run_crash_loop(options);
  std::printf("%s\n", report.summary().c_str());
  for (const auto& violation : report.violations)
    std::printf("  violation: %s\n", violation.c_str());
  std::fflush(stdout);

  CHECK(report.violations.empty());
  CHECK_MESSAGE(report.iterations == options.iterations,
                "only " << report.iterations << " of " << options.iterations
                        << " iterations ran");
  CHECK(report.confirmed > 0);
  // The barrier found committed acks, so "no redelivery after a committed
  // ack" was really checked.
  CHECK(report.acks_committed > 0);
  CHECK(report.lost == 0);
  CHECK(report.undelivered == 0);
}

// The same kills under producers that use the reconnecting client with no
// retry code of their own. CRASH_ITERATIONS kills as well.
TEST_CASE("crash loop: reconnecting producers") {
  CrashLoopOptions defaults;
  defaults.iterations = 50;
  defaults.time_budget = std::chrono::seconds(900);
  defaults.verbose = true;
  CrashLoopOptions options = crash_loop_options_from_env(defaults);
  ReconnectLoopReport report = run_reconnect_crash_loop(options);
  std::printf("%s\n", report.summary().c_str());
  for (const auto& violation : report.violations)
    std::printf("  violation: %s\n", violation.c_str());
  std::fflush(stdout);
  CHECK(report.violations.empty());
  CHECK(report.iterations == options.iterations);
  CHECK(report.confirmed > 0);
  CHECK(report.lost == 0);
  CHECK(report.stored_twice == 0);
}

}  // namespace tern::test
