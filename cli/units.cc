#include "units.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace tern::cli {

namespace {

// Splits "24h" into 24 and "h". False if it does not start with a whole
// number that fits in 64 bits.
bool split_number(const std::string& text, uint64_t* number,
                  std::string* unit) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0) return false;
  errno = 0;
  unsigned long long n =
      std::strtoull(text.substr(0, digits).c_str(), nullptr, 10);
  if (errno != 0) return false;
  *number = n;
  *unit = text.substr(digits);
  return true;
}

struct Unit {
  const char* name;
  uint64_t size;
};

// n units of `unit` among `units`, if that fits in `max`.
bool scale(uint64_t n, const std::string& unit,
           std::initializer_list<Unit> units, uint64_t max, uint64_t* out) {
  for (const Unit& u : units) {
    if (unit != u.name) continue;
    if (n > max / u.size) return false;
    *out = n * u.size;
    return true;
  }
  return false;
}

}  // namespace

bool parse_count(const std::string& text, uint64_t min, uint64_t max,
                 uint64_t* out, std::string* why) {
  uint64_t n = 0;
  std::string rest;
  if (split_number(text, &n, &rest) && rest.empty() && n >= min && n <= max) {
    *out = n;
    return true;
  }
  *why = "a whole number from " + std::to_string(min) + " to " +
         std::to_string(max) + ", not '" + text + "'";
  return false;
}

bool parse_size(const std::string& text, uint64_t* bytes, std::string* why) {
  uint64_t n = 0;
  std::string unit;
  if (split_number(text, &n, &unit) &&
      scale(n, unit,
            {{"", 1},
             {"B", 1},
             {"KiB", 1ull << 10},
             {"MiB", 1ull << 20},
             {"GiB", 1ull << 30},
             {"TiB", 1ull << 40},
             {"KB", 1'000},
             {"MB", 1'000'000},
             {"GB", 1'000'000'000},
             {"TB", 1'000'000'000'000}},
            std::numeric_limits<uint64_t>::max(), bytes))
    return true;
  *why =
      "a whole number of bytes, optionally with a unit (B, KiB, MiB, GiB, "
      "TiB, KB, MB, GB, TB), e.g. 512MiB, not '" +
      text + "'";
  return false;
}

bool parse_duration(const std::string& text, uint64_t bare_unit_ms,
                    std::chrono::milliseconds* out, std::string* why) {
  const uint64_t max = uint64_t(std::numeric_limits<int64_t>::max());
  uint64_t n = 0, ms = 0;
  std::string unit;
  bool ok = split_number(text, &n, &unit);
  if (ok && unit.empty())
    ok = bare_unit_ms != 0 && scale(n, "", {{"", bare_unit_ms}}, max, &ms);
  else if (ok)
    ok = scale(n, unit,
               {{"ms", 1},
                {"s", 1000},
                {"m", 60'000},
                {"h", 3'600'000},
                {"d", 86'400'000}},
               max, &ms);
  if (ok) {
    *out = std::chrono::milliseconds(int64_t(ms));
    return true;
  }
  *why = "a whole number with a unit (ms, s, m, h or d), e.g. 30s or 24h";
  if (bare_unit_ms == 1) *why += "; a bare number is milliseconds";
  if (bare_unit_ms == 1000) *why += "; a bare number is seconds";
  *why += ", not '" + text + "'";
  return false;
}

namespace {

// "at least MIN (from MIN to MAX)" or "at most MAX (...)" for `value`,
// which is outside [min, max]; no range when `max` is no limit at all.
template <typename T, typename Format>
bool out_of_range(const std::string& text, T value, T min, T max,
                  bool unbounded, Format format, std::string* why) {
  if (value >= min && value <= max) return false;
  *why = value < min ? "at least " + format(min) : "at most " + format(max);
  if (!unbounded) *why += " (from " + format(min) + " to " + format(max) + ")";
  *why += ", not '" + text + "'";
  return true;
}

}  // namespace

bool parse_size(const std::string& text, uint64_t min, uint64_t max,
                uint64_t* bytes, std::string* why) {
  auto format = [](uint64_t n) { return n == 0 ? "0" : format_size(n); };
  return parse_size(text, bytes, why) &&
         !out_of_range(text, *bytes, min, max,
                       max == std::numeric_limits<uint64_t>::max(), format,
                       why);
}

bool parse_duration(const std::string& text, uint64_t bare_unit_ms,
                    std::chrono::milliseconds min,
                    std::chrono::milliseconds max,
                    std::chrono::milliseconds* out, std::string* why) {
  auto format = [](std::chrono::milliseconds ms) {
    return ms.count() == 0 ? "0ms" : format_duration(ms);
  };
  return parse_duration(text, bare_unit_ms, out, why) &&
         !out_of_range(text, *out, min, max, false, format, why);
}

bool parse_seconds(const std::string& text, std::chrono::milliseconds* out,
                   std::string* why) {
  char* end = nullptr;
  errno = 0;
  double seconds = std::strtod(text.c_str(), &end);
  // Up to about ten years; beyond that "forever" is the better spelling.
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(seconds) ||
      seconds < 0 || seconds > 3e8) {
    *why = "a number of seconds, e.g. 2 or 0.5, not '" + text + "'";
    return false;
  }
  *out = std::chrono::milliseconds(int64_t(seconds * 1000 + 0.5));
  return true;
}

bool parse_delays(const std::string& text, std::vector<uint32_t>* out,
                  std::string* why) {
  std::vector<uint32_t> delays;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma - start);
    std::chrono::milliseconds ms;
    std::string item_why;
    if (!parse_duration(item, 1, std::chrono::milliseconds(0),
                        std::chrono::milliseconds(kMaxRetryDelayMs), &ms,
                        &item_why)) {
      *why = "retry delays are durations separated by commas (100ms,1s,5s): " +
             item_why;
      return false;
    }
    delays.push_back(uint32_t(ms.count()));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (delays.size() > kMaxRetryDelays) {
    *why = "at most " + std::to_string(kMaxRetryDelays) + " retry delays";
    return false;
  }
  *out = std::move(delays);
  return true;
}

std::string format_delays(const std::vector<uint32_t>& delays_ms) {
  std::string text;
  for (uint32_t ms : delays_ms) {
    if (!text.empty()) text += ',';
    text += ms == 0 ? "0" : format_duration(std::chrono::milliseconds(ms));
  }
  return text;
}

bool parse_position(const std::string& text, Position* out, std::string* why) {
  std::string number_why;
  if (text == "earliest") {
    *out = {Position::Kind::kEarliest, 0};
    return true;
  }
  if (text == "latest") {
    *out = {Position::Kind::kLatest, 0};
    return true;
  }
  if (text.rfind("offset:", 0) == 0 &&
      parse_count(text.substr(7), 0, std::numeric_limits<uint64_t>::max(),
                  &out->at, &number_why)) {
    out->kind = Position::Kind::kOffset;
    return true;
  }
  if (text.rfind("time:", 0) == 0 &&
      parse_count(text.substr(5), 0, std::numeric_limits<int64_t>::max(),
                  &out->at, &number_why)) {
    out->kind = Position::Kind::kTime;
    return true;
  }
  *why = "earliest, latest, offset:N or time:UNIX_MS, not '" + text + "'";
  return false;
}

std::string format_duration(std::chrono::milliseconds ms) {
  int64_t n = ms.count();
  if (n == 0) return "none";
  static const struct {
    const char* unit;
    int64_t ms;
  } kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}};
  for (const auto& u : kUnits) {
    if (n % u.ms == 0) return std::to_string(n / u.ms) + u.unit;
  }
  return std::to_string(n) + "ms";
}

std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "none";
  static const struct {
    const char* unit;
    uint64_t bytes;
  } kUnits[] = {{"TiB", 1ull << 40},
                {"GiB", 1ull << 30},
                {"MiB", 1ull << 20},
                {"KiB", 1ull << 10}};
  for (const auto& u : kUnits) {
    if (bytes % u.bytes == 0) return std::to_string(bytes / u.bytes) + u.unit;
  }
  return std::to_string(bytes) + "B";
}

}  // namespace tern::cli
