// The values people type on a command line or in tern.toml, parsed and
// printed the same way by tern, tern-broker and tern-bench: counts, sizes
// (64MiB), durations (30s, 24h), seconds (1.5) and start positions
// (earliest, latest, offset:N, time:MS).
//
// Each parser returns false and says in *why what form it wants (not which
// flag: the caller knows that), so that a command-line library, a config file
// reader and a hand-written loop can all report errors the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace tern::cli {

// A whole number from `min` to `max`.
bool parse_count(const std::string& text, uint64_t min, uint64_t max,
                 uint64_t* out, std::string* why);

// A whole number of bytes, optionally with a unit: B, KiB, MiB, GiB, TiB
// (powers of 1024) or KB, MB, GB, TB (powers of 1000): 512, 64KiB, 1GB.
bool parse_size(const std::string& text, uint64_t* bytes, std::string* why);

// The same, from `min` to `max` bytes; out of range, *why says "at least
// MIN" or "at most MAX".
bool parse_size(const std::string& text, uint64_t min, uint64_t max,
                uint64_t* bytes, std::string* why);

// A whole number with a unit: ms, s, m, h or d (30s, 24h). A bare number
// means `bare_unit_ms` milliseconds each, or is refused if that is 0.
bool parse_duration(const std::string& text, uint64_t bare_unit_ms,
                    std::chrono::milliseconds* out, std::string* why);

// The same, from `min` to `max`.
bool parse_duration(const std::string& text, uint64_t bare_unit_ms,
                    std::chrono::milliseconds min,
                    std::chrono::milliseconds max,
                    std::chrono::milliseconds* out, std::string* why);

// A number of seconds, fractions allowed (0.5), up to about ten years.
bool parse_seconds(const std::string& text, std::chrono::milliseconds* out,
                   std::string* why);

// Retry delays (a subscription's backoff): durations separated by commas,
// "100ms,1s,5s,30s", each at most a day, at most kMaxRetryDelays of them;
// "0" alone means at once.
inline constexpr size_t kMaxRetryDelays = 32;
inline constexpr uint32_t kMaxRetryDelayMs = 86400000;
bool parse_delays(const std::string& text, std::vector<uint32_t>* out,
                  std::string* why);
std::string format_delays(const std::vector<uint32_t>& delays_ms);

// Where a subscription starts.
struct Position {
  enum class Kind { kLatest, kEarliest, kOffset, kTime };
  Kind kind = Kind::kLatest;
  uint64_t at = 0;  // the offset, or Unix milliseconds
};
// earliest, latest, offset:N or time:UNIX_MS.
bool parse_position(const std::string& text, Position* out, std::string* why);

// The largest unit that states the value exactly: 86400000 ms -> "1d",
// 1073741824 -> "1GiB"; 0 -> "none" (no limit).
std::string format_duration(std::chrono::milliseconds ms);
std::string format_size(uint64_t bytes);

}  // namespace tern::cli
