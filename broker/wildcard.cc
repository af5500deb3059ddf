#include "wildcard.h"

#include <cctype>
#include <string_view>
#include <vector>

namespace tern {

namespace {

std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

}  // namespace

bool is_pattern(const std::string& topic) {
  return topic.find_first_of("*>") != std::string::npos;
}

bool valid_pattern(const std::string& pattern, std::string* why) {
  if (pattern.empty() || pattern.size() > 200) {
    *why = "a topic pattern must be 1 to 200 bytes";
    return false;
  }
  std::vector<std::string_view> parts = tokens(pattern);
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view t = parts[i];
    if (t.empty()) {
      *why = "topic pattern '" + pattern + "' has an empty token";
      return false;
    }
    if (t == "*" || (t == ">" && i + 1 == parts.size())) continue;
    if (t.find_first_of("*>") != std::string_view::npos) {
      *why = "in topic pattern '" + pattern +
             "', '*' must be a whole token and '>' the whole last token";
      return false;
    }
    for (unsigned char c : t) {
      if (!(std::isalnum(c) || c == '_' || c == '-')) {
        *why = "topic pattern '" + pattern +
               "' may only hold letters, digits, '.', '_', '-', '*' and '>'";
        return false;
      }
    }
  }
  return true;
}

bool pattern_matches(const std::string& pattern, const std::string& topic) {
  std::vector<std::string_view> want = tokens(pattern);
  std::vector<std::string_view> have = tokens(topic);
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == ">") return have.size() > i;
    if (i >= have.size()) return false;
    if (want[i] != "*" && want[i] != have[i]) return false;
  }
  return want.size() == have.size();
}

}  // namespace tern
