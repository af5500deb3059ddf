// The simulated power-cut loop: what --fsync always promises, tested on the
// store itself (tests/power_cut_fs.h does the cutting).
//
// Each iteration opens the store on a fresh PowerCutFs, checks it against
// what was confirmed so far, then commits batches as the broker does
// (messages, the topic's state, a subscription cursor; now and then a
// compaction and a retention delete, so flushes, compactions and MANIFEST
// writes happen) until the power goes off at a random writing call. The
// store is closed, the directory brought to what a disk would hold, and the
// next iteration reopens it.
//
// With sync (--fsync always) every confirmed message and cursor must be
// there: `lost` counts confirmed messages missing, `cursors_behind` stored
// cursors behind a confirmed one. Without sync (--fsync never) confirmed
// messages may be lost (counted in `lost`), but the store must open, hold
// what it holds without holes and with the right contents; `violations`
// says what broke either promise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::test {

struct PowerCutOptions {
  int iterations = 20;
  double seconds = 600;  // no iteration starts after this
  bool sync = true;
  uint64_t seed = 0;     // 0: random
  bool verbose = false;  // a line per iteration on stdout
};

struct PowerCutReport {
  int iterations = 0;
  uint64_t seed = 0;
  uint64_t confirmed = 0;           // messages confirmed, all iterations
  uint64_t lost = 0;                // confirmed, then missing after a cut
  uint64_t cursors_behind = 0;      // a cursor older than the confirmed one
  uint64_t cuts_in_compaction = 0;  // cut while compact() was running
  double seconds = 0;
  std::vector<std::string> violations;

  std::string summary() const;
};

PowerCutReport run_power_cuts(const PowerCutOptions& options);

}  // namespace tern::test
