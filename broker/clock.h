// Wall-clock time for what is stored or compared across restarts (append
// timestamps, TTLs, retention ages, de-duplication windows). Deadlines within
// one run use the loop's monotonic uv_now() instead.
#pragma once

#include <chrono>
#include <cstdint>

namespace tern {

inline int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tern
