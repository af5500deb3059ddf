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

namespace {

// Checks the tokens of a topic name, or with `wildcards` of a pattern.
bool valid_tokens(const std::string& s, bool wildcards, std::string* why) {
  const char* what = wildcards ? "topic pattern" : "topic name";
  if (s.empty() || s.size() > kMaxTopicNameBytes) {
    *why = std::string(what) + " must be 1 to " +
           std::to_string(kMaxTopicNameBytes) + " bytes";
    return false;
  }
  std::vector<std::string_view> parts = tokens(s);
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view t = parts[i];
    if (t.empty()) {
      *why = std::string(what) + " '" + s +
             "' has an empty token: dots only go between tokens";
      return false;
    }
    if (wildcards) {
      if (t == "*" || (t == ">" && i + 1 == parts.size())) continue;
      if (t.find_first_of("*>") != std::string_view::npos) {
        *why = "in topic pattern '" + s +
               "', '*' must be a whole token and '>' the whole last token";
        return false;
      }
    }
    for (unsigned char c : t) {
      if (!(std::isalnum(c) || c == '_' || c == '-')) {
        *why = std::string(what) + " '" + s +
               "' may only hold letters, digits, '.', '_', '-'" +
               (wildcards ? ", '*' and '>'" : "");
        return false;
      }
    }
  }
  return true;
}

}  // namespace

bool valid_topic_name(const std::string& name, std::string* why) {
  return valid_tokens(name, false, why);
}

bool valid_pattern(const std::string& pattern, std::string* why) {
  return valid_tokens(pattern, true, why);
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
