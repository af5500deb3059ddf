// TraceContext (client.h): W3C traceparent and tracestate headers.
#include <algorithm>

#include "connection.h"
#include "traceparent.h"

namespace tern {

TraceContext TraceContext::start() {
  trace::Traceparent parent;
  parent.trace_id = random_hex16() + random_hex16();
  parent.parent_id = random_hex16();
  parent.flags = 1;  // sampled: the caller chose to trace this
  return {trace::format(parent), ""};
}

TraceContext TraceContext::of(const Message& message) {
  TraceContext context;
  trace::Traceparent parent;
  const std::string* traceparent = message.header(trace::kTraceparentHeader);
  if (traceparent == nullptr || !trace::parse(*traceparent, &parent))
    return context;
  context.traceparent = *traceparent;
  if (const std::string* state = message.header(trace::kTracestateHeader))
    context.tracestate = *state;
  return context;
}

TraceContext TraceContext::child() const {
  trace::Traceparent parent;
  if (!trace::parse(traceparent, &parent)) return {};
  parent.parent_id = random_hex16();
  return {trace::format(parent), tracestate};
}

std::string TraceContext::trace_id() const {
  trace::Traceparent parent;
  return trace::parse(traceparent, &parent) ? parent.trace_id : "";
}

void TraceContext::attach(OutgoingMessage* message) const {
  auto& headers = message->headers;
  headers.erase(std::remove_if(headers.begin(), headers.end(),
                               [](const Header& h) {
                                 return h.name == trace::kTraceparentHeader ||
                                        h.name == trace::kTracestateHeader;
                               }),
                headers.end());
  if (traceparent.empty()) return;
  headers.push_back({trace::kTraceparentHeader, traceparent});
  if (!tracestate.empty())
    headers.push_back({trace::kTracestateHeader, tracestate});
}

}  // namespace tern
