// What travels between a tern::Client and the broker: error codes and
// tern::Error, messages as published (OutgoingMessage) and as delivered
// (Message), their headers, W3C trace context, and each publish's result.
// Included by tern/client.h, which is what applications include.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tern {

// The broker's error codes (values as on the wire, see PROTOCOL.md), followed
// by the ones only the client raises.
enum class ErrorCode : uint16_t {
  kNone = 0,
  kBadFrame = 1,
  kFrameTooLarge = 2,
  kUnknownFrameType = 3,
  kHelloRequired = 4,
  kUnsupportedVersion = 5,
  kInvalidTopic = 6,
  kInvalidSubscription = 7,
  kUnknownConsumer = 8,
  kStorageFailure = 9,
  kShuttingDown = 10,
  kLimitExceeded = 11,
  kInternal = 12,
  kNotAllowed = 13,
  kUnknownTopic = 14,         // no topic of that name
  kTopicExists = 15,          // create_topic() with other settings
  kUnknownSubscription = 16,  // no durable subscription of that name
  kDeleted = 17,              // the consumer's topic or subscription is gone
  kNotAuthorized = 18,        // login failed: wrong or missing credentials
  kNotHeld = 19,  // consume_and_publish(): an input is no longer the consumer's
  // Client-side:
  kConnectFailed = 1000,   // could not reach the broker
  kConnectionLost = 1001,  // the connection closed or failed
  kTimeout = 1002,         // no reply within the timeout
  kProtocol = 1003,        // the broker sent something this client cannot read
  kInvalidArgument = 1004,
  kRemoteError = 1005,  // a responder failed to handle a request()
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

struct Header {
  std::string name;
  std::string value;
};

// Headers request() and Responder use; the "tern-" prefix is reserved for
// Tern's own headers.
//
//   tern-reply-to        on a request: the topic to publish the reply to
//   tern-correlation-id  on a request, copied onto its reply: which request
//                        the reply answers
//   tern-error           on a reply: the responder failed with this message
//                        (the payload is then empty)
inline constexpr const char kReplyToHeader[] = "tern-reply-to";
inline constexpr const char kCorrelationIdHeader[] = "tern-correlation-id";
inline constexpr const char kErrorHeader[] = "tern-error";

// A message to publish.
struct OutgoingMessage {
  std::string payload;
  std::vector<Header> headers;
  std::string key;
  // Producer message id. If the topic saw this id within the broker's
  // de-duplication window (2 minutes by default, kept across restarts), the
  // message is not appended again: its result has the original offset and
  // duplicate = true. This makes it safe to publish again what was sent but
  // not confirmed before a connection was lost. Empty: with reconnect on,
  // the Client's own re-sends are still stored once (see the top of this
  // file); a publish the application repeats is not recognised.
  std::string id;
  // Time to live: once this long has passed since the broker appended the
  // message, it is no longer delivered. 0: forever.
  std::chrono::milliseconds ttl{0};
  // Scheduled: not delivered before `delay` has passed since the broker
  // received it, nor before `deliver_at` (Unix ms; 0: no time); the later of
  // the two. It is stored and confirmed at once (PublishResult::scheduled)
  // and appended to the topic when due: its offset is given then, and its
  // ttl counts from then. At most 366 days ahead (else kLimitExceeded).
  std::chrono::milliseconds delay{0};
  int64_t deliver_at_ms = 0;
};

// A delivered message.
struct Message {
  std::string topic;
  std::string subscription;  // empty for an ephemeral subscription
  uint64_t offset = 0;
  uint32_t attempt = 0;      // 1 on first delivery, +1 on each redelivery
  int64_t timestamp_ms = 0;  // when the broker appended it, Unix ms
  std::string key;
  std::vector<Header> headers;
  std::string payload;
  // Which of the Client's connections delivered it (they change when it
  // reconnects): an ack of a message from an earlier one is dropped, since
  // its consumer id means nothing on the new one. Set by the client.
  uint64_t generation = 0;

  // The value of the first header called `name`, or nullptr.
  const std::string* header(const std::string& name) const {
    for (const Header& h : headers) {
      if (h.name == name) return &h.value;
    }
    return nullptr;
  }
};

// W3C Trace Context (https://www.w3.org/TR/trace-context/), carried in the
// headers "traceparent" and "tracestate". The broker stores and delivers
// them like any header, keeps them on dead letters and redeliveries, and
// names the trace id in its log lines about a message; Responder gives a
// reply its request's trace.
//
//   // A new trace, or one from your tracer:
//   tern::TraceContext trace = tern::TraceContext::start();
//   tern::OutgoingMessage m{payload};
//   trace.attach(&m);
//   ...
//   // The same trace id:
//   tern::TraceContext got = tern::TraceContext::of(delivered);
struct TraceContext {
  std::string traceparent;  // "00-<trace id>-<parent id>-<flags>"; empty: none
  std::string tracestate;   // vendors' entries, passed along unchanged

  // A new trace: random trace and parent ids, sampled.
  static TraceContext start();
  // The trace a message carries (empty if it has no valid traceparent).
  static TraceContext of(const Message& message);
  // The same trace with a new parent id: the next hop's span.
  TraceContext child() const;
  // The 32 hex digits naming the trace; empty if traceparent is not valid.
  std::string trace_id() const;
  // Sets the message's traceparent and tracestate headers (replacing any).
  void attach(OutgoingMessage* message) const;
};

// One topic's messages in Client::publish_atomic().
struct TopicMessages {
  std::string topic;
  std::vector<OutgoingMessage> messages;
};

// The outcome of publishing one message: its offset, or an error.
struct PublishResult {
  uint64_t offset = 0;
  ErrorCode error = ErrorCode::kNone;
  bool duplicate = false;  // an earlier message had the same id
  // Stored to be appended when due (OutgoingMessage::delay): offset is 0,
  // the message gets one when it is appended.
  bool scheduled = false;
};

}  // namespace tern
