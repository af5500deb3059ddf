// Topic patterns for wildcard consumers, as in NATS: a pattern is
// '.'-separated tokens where "*" stands for exactly one token and a final ">"
// for one or more. "orders.*" matches "orders.eu" but not "orders.eu.paris";
// "orders.>" matches both; neither matches "orders".
#pragma once

#include <string>

namespace tern {

// Whether `topic` is meant as a pattern: it holds a "*" or ">" (characters
// topic names cannot have).
bool is_pattern(const std::string& topic);

// Whether `pattern` is well formed; if not, *why says what is wrong.
bool valid_pattern(const std::string& pattern, std::string* why);

bool pattern_matches(const std::string& pattern, const std::string& topic);

}  // namespace tern
