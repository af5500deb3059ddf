// Topic names and the patterns of wildcard consumers, as in NATS. A topic
// name is non-empty tokens of letters, digits, '_' and '-' separated by
// single dots, so that every name can be matched by some pattern. A pattern
// is the same with "*" standing for exactly one token and a final ">" for
// one or more. "orders.*" matches "orders.eu" but not "orders.eu.paris";
// "orders.>" matches both; neither matches "orders".
#pragma once

#include <string>

namespace tern {

// Whether `topic` is meant as a pattern: it holds a "*" or ">" (characters
// topic names cannot have).
bool is_pattern(const std::string& topic);

constexpr size_t kMaxTopicNameBytes = 200;

// Whether `name` is a valid topic name; if not, *why says what is wrong.
bool valid_topic_name(const std::string& name, std::string* why);

// Whether `topic` is an inbox: a temporary topic replies go to (see
// PROTOCOL.md, request/reply).
inline bool is_inbox(const std::string& topic) {
  return topic.rfind("_inbox.", 0) == 0;
}

// Whether `pattern` is well formed; if not, *why says what is wrong.
bool valid_pattern(const std::string& pattern, std::string* why);

bool pattern_matches(const std::string& pattern, const std::string& topic);

}  // namespace tern
