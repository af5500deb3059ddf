// The bridge's log: one line per event on stderr, with the UTC time.
#pragma once

#include <string>

namespace tern::bridge {

void log_line(const std::string& text);

}  // namespace tern::bridge
