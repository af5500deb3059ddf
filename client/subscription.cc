// The public tern::Subscription: one consumer's deliveries (queued by the
// Connection's reader), and the acks, nacks and unsubscribe it sends.
#include <utility>

#include "connection.h"
#include "tern/client.h"

namespace tern {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

Subscription::Subscription(std::shared_ptr<Client::Connection> connection,
                           uint64_t consumer_id, std::string topic,
                           std::string name)
    : connection_(std::move(connection)),
      consumer_id_(consumer_id),
      topic_(std::move(topic)),
      name_(std::move(name)) {}

Subscription::Subscription(Subscription&& other) noexcept
    : connection_(std::move(other.connection_)),
      consumer_id_(std::exchange(other.consumer_id_, 0)),
      topic_(std::move(other.topic_)),
      name_(std::move(other.name_)) {}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    try {
      unsubscribe();
    } catch (...) {
      // Best effort, as in the destructor.
    }
    connection_ = std::move(other.connection_);
    consumer_id_ = std::exchange(other.consumer_id_, 0);
    topic_ = std::move(other.topic_);
    name_ = std::move(other.name_);
  }
  return *this;
}

Subscription::~Subscription() {
  try {
    unsubscribe();
  } catch (...) {
    // A destructor must not throw; the broker redelivers whatever was unacked
    // once it notices the consumer is gone.
  }
}

std::optional<Message> Subscription::next(std::chrono::milliseconds timeout) {
  if (consumer_id_ == 0) {
    throw Error(ErrorCode::kInvalidArgument, "subscription is closed");
  }
  return connection_->next(consumer_id_, timeout);
}

bool Subscription::wildcard() const {
  return topic_.find_first_of("*>") != std::string::npos;
}

void Subscription::ack(const Message& message) {
  settle(message.offset, message.offset, message.topic, true, 0, false,
         message.generation);
}

void Subscription::ack_range(uint64_t first, uint64_t last) {
  if (wildcard()) {
    throw Error(ErrorCode::kInvalidArgument,
                "a wildcard subscription acks by message: offsets are per "
                "topic");
  }
  settle(first, last, topic_, true);
}

void Subscription::nack(const Message& message,
                        std::chrono::milliseconds delay) {
  if (delay.count() < 0 ||
      delay.count() > std::numeric_limits<uint32_t>::max()) {
    throw Error(ErrorCode::kInvalidArgument,
                "nack delay must be from 0 to 2^32-1 ms");
  }
  settle(message.offset, message.offset, message.topic, false,
         uint32_t(delay.count()), false, message.generation);
}

void Subscription::reject(const Message& message) {
  settle(message.offset, message.offset, message.topic, false, 0, true,
         message.generation);
}

void Subscription::settle(uint64_t first, uint64_t last,
                          const std::string& topic, bool ack, uint32_t delay_ms,
                          bool dead_letter, uint64_t generation) {
  if (consumer_id_ == 0) {
    throw Error(ErrorCode::kInvalidArgument, "subscription is closed");
  }
  if (first > last) {
    throw Error(ErrorCode::kInvalidArgument,
                "ack range " + std::to_string(first) + ".." +
                    std::to_string(last) + " is empty");
  }
  // Only a wildcard consumer needs the topic; the others save the bytes.
  static const std::string kNoTopic;
  const std::string& topic_name = wildcard() ? topic : kNoTopic;
  if (ack) {
    connection_->ack(consumer_id_, generation, first, last, topic_name);
    return;
  }
  // A delivery of an earlier connection is settled by the broker itself: it
  // redelivers it (durable) or it is gone (ephemeral). Nothing to send.
  auto [broker_id, on] = connection_->route(consumer_id_, generation);
  if (broker_id == 0) return;
  flatbuffers::FlatBufferBuilder fbb(96 + topic.size());
  wire::OffsetRange range(first, last);
  auto ranges = fbb.CreateVectorOfStructs(&range, 1);
  auto topic_str = topic_name.empty() ? 0 : fbb.CreateString(topic_name);
  frame::finish(
      fbb, wire::Body::Nack,
      wire::CreateNack(fbb, broker_id, ranges, delay_ms, dead_letter, topic_str)
          .Union());
  connection_->send(fbb, on);
}

void Subscription::unsubscribe() {
  if (consumer_id_ == 0) return;
  uint64_t consumer_id = std::exchange(consumer_id_, 0);
  // Deliveries that race with the Unsubscribe are dropped here; the broker
  // redelivers them since they are never acked. A consumer the broker ended
  // (ConsumerClosed) is gone there already: nothing to unsubscribe.
  // A consumer of an earlier connection, or of none now, died with it.
  auto [broker_id, on] = connection_->forget_consumer(consumer_id);
  if (broker_id == 0) return;

  flatbuffers::FlatBufferBuilder fbb(64);
  uint64_t id = connection_->next_request_id();
  frame::finish(fbb, wire::Body::Unsubscribe,
                wire::CreateUnsubscribe(fbb, id, broker_id).Union());
  try {
    // Only on the connection the consumer id belongs to.
    connection_->call(id, wire::Body::UnsubscribeOk, fbb, "Unsubscribe",
                      Clock::now() + connection_->options().timeout,
                      Client::Connection::Resend::kNever, on);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kConnectionLost) throw;
  }
}

}  // namespace tern
