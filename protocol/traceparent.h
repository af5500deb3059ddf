// W3C Trace Context's traceparent header: "00-<trace id>-<parent id>-<flags>",
// 32, 16 and 2 lowercase hex digits (https://www.w3.org/TR/trace-context/).
// The broker reads it to name the trace in its log lines about a message;
// the clients read and write it for applications.
#pragma once

#include <string>
#include <string_view>

#include "tern_generated.h"

namespace tern::trace {

inline constexpr char kTraceparentHeader[] = "traceparent";
inline constexpr char kTracestateHeader[] = "tracestate";

struct Traceparent {
  std::string trace_id;   // 32 hex digits, not all zero
  std::string parent_id;  // 16 hex digits, not all zero
  unsigned flags = 0;     // bit 0: sampled
};

// False for anything but a version-00 traceparent as the spec has it (or a
// later version's first 55 characters followed by '-', as it allows).
bool parse(std::string_view text, Traceparent* out);
std::string format(const Traceparent& parent);

// The trace id of a message's valid traceparent header; empty if none.
std::string trace_id_of(
    const flatbuffers::Vector<flatbuffers::Offset<wire::Header>>* headers);

}  // namespace tern::trace
