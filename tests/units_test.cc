// The shared parsers of command-line and config-file values (cli/units.h).
#include "units.h"

#include <doctest/doctest.h>

namespace tern::cli {
namespace {

using namespace std::chrono_literals;

TEST_CASE("units: sizes, with and without a unit") {
  uint64_t n = 0;
  std::string why;
  CHECK((parse_size("512", &n, &why) && n == 512));
  CHECK((parse_size("64KiB", &n, &why) && n == 65536));
  CHECK((parse_size("16MiB", &n, &why) && n == 16u << 20));
  CHECK((parse_size("1GB", &n, &why) && n == 1'000'000'000));
  CHECK_FALSE(parse_size("12XB", &n, &why));
  CHECK(why.find("512MiB") != std::string::npos);
  CHECK_FALSE(parse_size("-1", &n, &why));
  CHECK_FALSE(parse_size("99999999999TiB", &n, &why));  // overflows
  CHECK((parse_size("64KiB", 1024, 1u << 20, &n, &why) && n == 65536));
  CHECK_FALSE(parse_size("2MiB", 1024, 1u << 20, &n, &why));
  CHECK(why == "at most 1MiB (from 1KiB to 1MiB), not '2MiB'");
  CHECK_FALSE(parse_size("0", 1, 10, &n, &why));
  CHECK(why == "at least 1B (from 1B to 10B), not '0'");
  CHECK(format_size(1u << 30) == "1GiB");
  CHECK(format_size(1000) == "1000B");
  CHECK(format_size(0) == "none");
}

TEST_CASE("units: durations, seconds and counts") {
  std::chrono::milliseconds ms{};
  std::string why;
  CHECK((parse_duration("30s", 0, &ms, &why) && ms == 30s));
  CHECK((parse_duration("24h", 0, &ms, &why) && ms == 24h));
  CHECK((parse_duration("250", 1, &ms, &why) && ms == 250ms));
  CHECK((parse_duration("2", 1000, &ms, &why) && ms == 2s));
  CHECK_FALSE(parse_duration("250", 0, &ms, &why));  // a unit is required
  CHECK_FALSE(parse_duration("3w", 0, &ms, &why));
  CHECK((parse_duration("2s", 1, 1ms, 1h, &ms, &why) && ms == 2s));
  CHECK_FALSE(parse_duration("2h", 1, 1ms, 1h, &ms, &why));
  CHECK(why == "at most 1h (from 1ms to 1h), not '2h'");
  CHECK(format_duration(86'400'000ms) == "1d");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK((parse_seconds("0.5", &ms, &why) && ms == 500ms));
  CHECK_FALSE(parse_seconds("soon", &ms, &why));
  uint64_t n = 0;
  CHECK((parse_count("7", 1, 10, &n, &why) && n == 7));
  CHECK_FALSE(parse_count("0", 1, 10, &n, &why));
  CHECK(why == "a whole number from 1 to 10, not '0'");
  CHECK_FALSE(parse_count("7x", 1, 10, &n, &why));
}

TEST_CASE("units: start positions") {
  Position p;
  std::string why;
  CHECK((parse_position("earliest", &p, &why) &&
         p.kind == Position::Kind::kEarliest));
  CHECK((parse_position("offset:42", &p, &why) &&
         p.kind == Position::Kind::kOffset && p.at == 42));
  CHECK((parse_position("time:1764100000000", &p, &why) &&
         p.kind == Position::Kind::kTime && p.at == 1764100000000));
  CHECK_FALSE(parse_position("offset:", &p, &why));
  CHECK_FALSE(parse_position("yesterday", &p, &why));
  CHECK(why.find("offset:N") != std::string::npos);
}

}  // namespace
}  // namespace tern::cli
