// The short power-cut loop of `make test` (the long one: `make
// power-cut-test`, tests/power_cut/main.cc).
#include "power_cut.h"
#include "under_tsan.h"

#include <doctest/doctest.h>

namespace tern::test {

// Not under ThreadSanitizer: see under_tsan.h.
TEST_CASE("power cut: with sync every confirmed message and cursor survives" *
          doctest::skip(kUnderTsan)) {
  PowerCutOptions options;
  options.iterations = 20;
  options.seconds = 60;
  PowerCutReport report = run_power_cuts(options);
  MESSAGE(report.summary());
  for (const auto& v : report.violations) INFO(v);
  CHECK(report.violations.empty());
  CHECK(report.iterations == options.iterations);
  CHECK(report.confirmed > 0);
  CHECK(report.lost == 0);
  CHECK(report.cursors_behind == 0);
}

TEST_CASE("power cut: without sync the store opens and holds a clean prefix" *
          doctest::skip(kUnderTsan)) {
  PowerCutOptions options;
  options.iterations = 5;
  options.seconds = 30;
  options.sync = false;
  PowerCutReport report = run_power_cuts(options);
  MESSAGE(report.summary());
  for (const auto& v : report.violations) INFO(v);
  CHECK(report.violations.empty());
  CHECK(report.iterations == options.iterations);
}

}  // namespace tern::test
