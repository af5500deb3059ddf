// The public tern::Client: each call builds its frame and hands it to the
// Connection (connection.h), which does the waiting. Subscription is in
// subscription.cc.
#include "tern/client.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "connection.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> bytes(
    flatbuffers::FlatBufferBuilder& fbb, const std::string& s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Bytes a message takes in a Publish frame, roughly but never below the truth
// by much: sizing the builder up front means payloads are copied exactly once,
// with no regrowth of the buffer.
size_t encoded_size(const std::string& payload, const std::string& key,
                    const std::vector<Header>& headers) {
  size_t n = payload.size() + key.size() + 64;
  for (const Header& h : headers) n += h.name.size() + h.value.size() + 32;
  return n;
}

flatbuffers::Offset<wire::TopicSettings> build_settings(
    flatbuffers::FlatBufferBuilder& fbb, const TopicSettings& settings) {
  if (settings.max_age.count() < 0) {
    throw Error(ErrorCode::kInvalidArgument, "max_age must not be negative");
  }
  return wire::CreateTopicSettings(
      fbb, uint64_t(settings.max_age.count()), settings.max_bytes,
      settings.max_messages, settings.work_queue, settings.dead_letter_expired);
}

flatbuffers::Offset<wire::Message> build_message(
    flatbuffers::FlatBufferBuilder& fbb, const std::string& payload,
    const std::string& key, const std::vector<Header>& headers,
    const std::string& id, uint32_t ttl_ms, int64_t deliver_at_ms = 0,
    uint32_t delay_ms = 0) {
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>>
      header_vec = 0;
  if (!headers.empty()) {
    // Few headers per message; a small vector per message is the price of
    // FlatBuffers wanting children built before their parent.
    std::vector<flatbuffers::Offset<wire::Header>> offsets;
    offsets.reserve(headers.size());
    for (const Header& h : headers) {
      auto name = fbb.CreateString(h.name);
      auto value = bytes(fbb, h.value);
      offsets.push_back(wire::CreateHeader(fbb, name, value));
    }
    header_vec = fbb.CreateVector(offsets);
  }
  auto key_vec = key.empty() ? 0 : bytes(fbb, key);
  auto payload_vec = bytes(fbb, payload);
  auto id_str = id.empty() ? 0 : fbb.CreateString(id);
  return wire::CreateMessage(fbb, key_vec, header_vec, payload_vec, id_str,
                             ttl_ms, deliver_at_ms, delay_ms);
}

// Publish.producer and .sequence: with reconnect on, a frame may be sent
// twice, and these let the broker store its messages once. None without.
struct Sequencing {
  uint64_t producer = 0;
  uint64_t first = 0;
};

Sequencing sequencing(Client::Connection& connection, size_t count) {
  if (!connection.options().reconnect) return {};
  return {connection.producer(), connection.take_sequences(count)};
}

void finish_publish(
    flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
    const std::string& topic,
    const std::vector<flatbuffers::Offset<wire::Message>>& messages,
    bool confirm, Sequencing sequencing) {
  auto topic_str = fbb.CreateString(topic);
  auto message_vec = fbb.CreateVector(messages);
  frame::finish(
      fbb, wire::Body::Publish,
      wire::CreatePublish(fbb, request_id, topic_str, confirm, message_vec,
                          sequencing.producer, sequencing.first)
          .Union());
}

size_t publish_frame_size(const std::string& topic,
                          const std::vector<OutgoingMessage>& messages) {
  size_t size = topic.size() + 128;
  for (const OutgoingMessage& m : messages) {
    size += encoded_size(m.payload, m.key, m.headers) + m.id.size() + 8;
  }
  return size;
}

std::vector<flatbuffers::Offset<wire::Message>> build_messages(
    flatbuffers::FlatBufferBuilder& fbb,
    const std::vector<OutgoingMessage>& messages) {
  std::vector<flatbuffers::Offset<wire::Message>> offsets;
  offsets.reserve(messages.size());
  for (const OutgoingMessage& m : messages) {
    if (m.ttl.count() < 0 || m.ttl.count() > UINT32_MAX) {
      throw Error(ErrorCode::kInvalidArgument,
                  "ttl must be from 0 to 2^32-1 ms");
    }
    if (m.delay.count() < 0 || m.delay.count() > UINT32_MAX) {
      throw Error(ErrorCode::kInvalidArgument,
                  "delay must be from 0 to 2^32-1 ms");
    }
    offsets.push_back(build_message(fbb, m.payload, m.key, m.headers, m.id,
                                    uint32_t(m.ttl.count()), m.deliver_at_ms,
                                    uint32_t(m.delay.count())));
  }
  return offsets;
}

void build_publish(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                   const std::string& topic,
                   const std::vector<OutgoingMessage>& messages, bool confirm,
                   Sequencing sequencing) {
  finish_publish(fbb, request_id, topic, build_messages(fbb, messages), confirm,
                 sequencing);
}

// Puts what was being done in front of a broker's request error, e.g.
// "publish to orders failed: InvalidTopic: ...". Client-side errors (lost
// connection, timeout) already say what happened and pass through as they are.
[[noreturn]] void rethrow_with_context(const Error& e,
                                       const std::string& what) {
  if (uint16_t(e.code()) < uint16_t(ErrorCode::kConnectFailed)) {
    throw Error(e.code(), what + " failed: " + e.what());
  }
  throw e;
}

// Refuses a Publish frame the broker would reject: it leaves room below its
// maximum frame size for the frame that delivers the messages.
void check_frame_size(const flatbuffers::FlatBufferBuilder& fbb,
                      uint32_t max_frame_bytes) {
  size_t body = fbb.GetSize() - frame::kLengthBytes;
  size_t limit = max_frame_bytes > frame::kDeliverReserveBytes
                     ? max_frame_bytes - frame::kDeliverReserveBytes
                     : 0;
  if (body > limit) {
    throw Error(ErrorCode::kInvalidArgument,
                "publish frame of " + std::to_string(body) +
                    " bytes exceeds the broker's limit of " +
                    std::to_string(limit));
  }
}

// The one result of a single-message publish, or what went wrong.
PublishResult one_result(const Reply& reply, const std::string& topic) {
  if (reply.results.size() != 1)
    throw Error(ErrorCode::kProtocol,
                "broker confirmed 1 message to " + topic + " with " +
                    std::to_string(reply.results.size()) + " results");
  const PublishResult& result = reply.results[0];
  if (result.error != ErrorCode::kNone)
    throw Error(result.error,
                "publish to " + topic + " failed: " +
                    wire::EnumNameErrorCode(wire::ErrorCode(result.error)));
  return result;
}

}  // namespace

// --- Client ---

std::unique_ptr<Client> Client::connect(const std::string& address,
                                        ClientOptions options) {
  return std::unique_ptr<Client>(
      new Client(Connection::open(address, std::move(options))));
}

Client::Client(std::shared_ptr<Connection> connection)
    : connection_(std::move(connection)) {}

Client::~Client() { connection_->close(); }

uint64_t Client::publish(const std::string& topic, std::string payload,
                         std::vector<Header> headers) {
  static const std::string kNone;
  flatbuffers::FlatBufferBuilder fbb(encoded_size(payload, kNone, headers) +
                                     topic.size() + 128);
  uint64_t id = connection_->next_request_id();
  std::vector<flatbuffers::Offset<wire::Message>> messages{
      build_message(fbb, payload, kNone, headers, kNone, 0)};
  finish_publish(fbb, id, topic, messages, /*confirm=*/true,
                 sequencing(*connection_, 1));
  check_frame_size(fbb, connection_->max_frame_bytes());

  Reply reply;
  try {
    reply = connection_->call(id, wire::Body::PublishAck, fbb, "Publish",
                              Clock::now() + connection_->options().timeout);
  } catch (const Error& e) {
    rethrow_with_context(e, "publish to " + topic);
  }
  return one_result(reply, topic).offset;
}

PublishResult publish_message(Client::Connection& connection,
                              const std::string& topic,
                              const OutgoingMessage& message,
                              Clock::time_point deadline) {
  // build_publish takes a batch; a one-element one costs a copy of the
  // message, which this path (request/reply, not bulk) can afford.
  const std::vector<OutgoingMessage> batch{message};
  flatbuffers::FlatBufferBuilder fbb(publish_frame_size(topic, batch));
  uint64_t id = connection.next_request_id();
  build_publish(fbb, id, topic, batch, /*confirm=*/true,
                sequencing(connection, 1));
  check_frame_size(fbb, connection.max_frame_bytes());
  Reply reply;
  try {
    reply = connection.call(id, wire::Body::PublishAck, fbb, "Publish",
                            deadline);
  } catch (const Error& e) {
    rethrow_with_context(e, "publish to " + topic);
  }
  return one_result(reply, topic);
}

PublishResult Client::publish(const std::string& topic,
                              const OutgoingMessage& message) {
  return publish_message(*connection_, topic, message,
                         Clock::now() + connection_->options().timeout);
}

std::vector<PublishResult> Client::publish_atomic(
    const std::vector<TopicMessages>& parts) {
  return transact(parts, nullptr, {});
}

std::vector<PublishResult> Client::consume_and_publish(
    Subscription& from, const std::vector<Message>& inputs,
    const std::vector<TopicMessages>& parts) {
  if (inputs.empty()) return publish_atomic(parts);
  return transact(parts, &from, inputs);
}

std::vector<PublishResult> Client::transact(
    const std::vector<TopicMessages>& parts, Subscription* from,
    const std::vector<Message>& inputs) {
  size_t total = 0, size = 128 + 32 * inputs.size();
  for (const TopicMessages& part : parts) {
    total += part.messages.size();
    size += publish_frame_size(part.topic, part.messages);
  }
  flatbuffers::FlatBufferBuilder fbb(size);
  uint64_t id = connection_->next_request_id();
  // With acks, only on the connection that delivered the inputs: their
  // consumer id means nothing on another, where they come again anyway.
  uint64_t generation = 0;
  std::vector<flatbuffers::Offset<wire::Ack>> acks;
  if (from != nullptr) {
    if (from->consumer_id_ == 0)
      throw Error(ErrorCode::kInvalidArgument, "subscription is closed");
    generation = inputs[0].generation;
    auto [broker_id, on] = connection_->route(from->consumer_id_, generation);
    for (const Message& m : inputs)
      if (m.generation != generation || broker_id == 0)
        throw Error(ErrorCode::kNotHeld,
                    "an input was delivered on an earlier connection: it is "
                    "delivered again, not acked");
    generation = on;
    // One Ack per topic (a wildcard consumer's acks name theirs), offsets
    // as ranges.
    std::map<std::string, std::vector<uint64_t>> by_topic;
    for (const Message& m : inputs) by_topic[m.topic].push_back(m.offset);
    for (auto& [topic, offsets] : by_topic) {
      std::sort(offsets.begin(), offsets.end());
      std::vector<wire::OffsetRange> ranges;
      for (uint64_t o : offsets) {
        if (!ranges.empty() && ranges.back().last() + 1 == o)
          ranges.back() = wire::OffsetRange(ranges.back().first(), o);
        else if (ranges.empty() || ranges.back().last() != o)
          ranges.emplace_back(o, o);
      }
      acks.push_back(
          wire::CreateAck(fbb, broker_id, fbb.CreateVectorOfStructs(ranges),
                          from->wildcard() ? fbb.CreateString(topic) : 0));
    }
  }
  // One producer for the request; each part's first sequence follows on
  // from the part before it.
  Sequencing sequencing_all = sequencing(*connection_, total);
  uint64_t sequence = sequencing_all.first;
  std::vector<flatbuffers::Offset<wire::PublishPart>> wire_parts;
  for (const TopicMessages& part : parts) {
    std::vector<flatbuffers::Offset<wire::Message>> messages =
        build_messages(fbb, part.messages);
    wire_parts.push_back(wire::CreatePublishPart(
        fbb, fbb.CreateString(part.topic), fbb.CreateVector(messages),
        sequencing_all.producer ? sequence : 0));
    sequence += part.messages.size();
  }
  frame::finish(
      fbb, wire::Body::Transaction,
      wire::CreateTransaction(fbb, id, fbb.CreateVector(wire_parts),
                              sequencing_all.producer,
                              acks.empty() ? 0 : fbb.CreateVector(acks))
          .Union());
  check_frame_size(fbb, connection_->max_frame_bytes());
  Reply reply;
  try {
    reply = connection_->call(id, wire::Body::PublishAck, fbb, "Transaction",
                              Clock::now() + connection_->options().timeout,
                              from != nullptr ? Connection::Resend::kNever
                                              : Connection::Resend::kSafe,
                              generation);
  } catch (const Error& e) {
    rethrow_with_context(e, "atomic publish");
  }
  if (reply.results.size() != total)
    throw Error(ErrorCode::kProtocol,
                "broker confirmed " + std::to_string(total) +
                    " messages with " + std::to_string(reply.results.size()) +
                    " results");
  for (const PublishResult& r : reply.results)
    if (r.error != ErrorCode::kNone)
      throw Error(r.error,
                  std::string("atomic publish failed, nothing of it "
                              "stored: ") +
                      wire::EnumNameErrorCode(wire::ErrorCode(r.error)));
  return reply.results;
}

void Client::publish_async(const std::string& topic,
                           const std::vector<OutgoingMessage>& messages,
                           ConfirmCallback on_confirm) {
  if (messages.empty()) {
    // Nothing to send or confirm; keep the promise of one callback per call.
    if (on_confirm) on_confirm({});
    return;
  }
  flatbuffers::FlatBufferBuilder fbb(publish_frame_size(topic, messages));
  uint64_t id = connection_->next_request_id();
  build_publish(fbb, id, topic, messages, /*confirm=*/true,
                sequencing(*connection_, messages.size()));
  check_frame_size(fbb, connection_->max_frame_bytes());
  connection_->publish_async(id, messages.size(), topic, std::move(on_confirm),
                             fbb);
}

void Client::publish_unconfirmed(const std::string& topic,
                                 const std::vector<OutgoingMessage>& messages) {
  if (messages.empty()) return;
  flatbuffers::FlatBufferBuilder fbb(publish_frame_size(topic, messages));
  // Never sent again, so no sequences.
  build_publish(fbb, connection_->next_request_id(), topic, messages,
                /*confirm=*/false, Sequencing{});
  check_frame_size(fbb, connection_->max_frame_bytes());
  connection_->send(fbb);
}

void Client::flush() { connection_->flush(); }

size_t Client::unconfirmed() const { return connection_->unconfirmed(); }

void build_subscribe(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                     const SubscribeOptions& options) {
  auto topic = fbb.CreateString(options.topic);
  auto name = fbb.CreateString(options.subscription);
  auto dead_letter = options.dead_letter_topic.empty()
                         ? 0
                         : fbb.CreateString(options.dead_letter_topic);
  std::vector<uint32_t> delays;
  for (auto delay : options.retry_delays)
    delays.push_back(uint32_t(delay.count()));
  auto retry_delays = delays.empty() ? 0 : fbb.CreateVector(delays);
  // The enums match value for value.
  auto start = wire::StartPosition(uint8_t(options.start));
  int64_t start_time_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          options.start_time.time_since_epoch())
          .count();
  frame::finish(
      fbb, wire::Body::Subscribe,
      wire::CreateSubscribe(
          fbb, request_id, topic, name, start, options.prefetch,
          uint32_t(options.ack_timeout.count()), options.start_offset,
          start_time_ms, options.max_deliveries, dead_letter, retry_delays)
          .Union());
}

Subscription Client::subscribe(const SubscribeOptions& options) {
  if (options.ack_timeout.count() < 0 ||
      options.ack_timeout.count() > std::numeric_limits<uint32_t>::max()) {
    throw Error(ErrorCode::kInvalidArgument,
                "ack_timeout must be from 0 to 2^32-1 ms");
  }
  for (auto delay : options.retry_delays) {
    if (delay.count() < 0 ||
        delay.count() > std::numeric_limits<uint32_t>::max())
      throw Error(ErrorCode::kInvalidArgument,
                  "retry delays must be from 0 to 2^32-1 ms");
  }
  std::string name;
  uint64_t consumer = 0;
  try {
    consumer = connection_->subscribe(options, &name);
  } catch (const Error& e) {
    rethrow_with_context(e, "subscribe to " + options.topic);
  }
  return Subscription(connection_, consumer, options.topic, name);
}

std::chrono::microseconds Client::ping() {
  flatbuffers::FlatBufferBuilder fbb(64);
  uint64_t id = connection_->next_request_id();
  frame::finish(fbb, wire::Body::Ping, wire::CreatePing(fbb, id).Union());
  auto start = Clock::now();
  connection_->call(id, wire::Body::Pong, fbb, "Ping",
                    start + connection_->options().timeout);
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                               start);
}

uint64_t Client::reset_subscription(const SubscribeOptions& options) {
  flatbuffers::FlatBufferBuilder fbb(256);
  uint64_t id = connection_->next_request_id();
  auto topic = fbb.CreateString(options.topic);
  auto name = fbb.CreateString(options.subscription);
  int64_t start_time_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          options.start_time.time_since_epoch())
          .count();
  frame::finish(fbb, wire::Body::ResetSubscription,
                wire::CreateResetSubscription(
                    fbb, id, topic, name,
                    wire::StartPosition(uint8_t(options.start)),
                    options.start_offset, start_time_ms)
                    .Union());
  try {
    return connection_
        ->call(id, wire::Body::ResetOk, fbb, "ResetSubscription",
               Clock::now() + connection_->options().timeout,
               Connection::Resend::kNever)
        .result.offset;
  } catch (const Error& e) {
    rethrow_with_context(e, "reset of " + options.subscription + " on " +
                                options.topic);
  }
}

std::vector<TopicInfo> Client::topics(const std::string& name) {
  flatbuffers::FlatBufferBuilder fbb(128);
  uint64_t id = connection_->next_request_id();
  auto topic = fbb.CreateString(name);
  frame::finish(fbb, wire::Body::ListTopics,
                wire::CreateListTopics(fbb, id, topic).Union());
  Reply reply = connection_->call(
      id, wire::Body::TopicList, fbb, "ListTopics",
      Clock::now() + connection_->options().timeout);
  return std::move(reply.topics);
}

bool Client::create_topic(const std::string& name,
                          const TopicSettings& settings, bool temporary) {
  flatbuffers::FlatBufferBuilder fbb(256);
  uint64_t id = connection_->next_request_id();
  auto topic = fbb.CreateString(name);
  auto wire_settings = build_settings(fbb, settings);
  frame::finish(
      fbb, wire::Body::CreateTopic,
      wire::CreateCreateTopic(fbb, id, topic, wire_settings, temporary)
          .Union());
  try {
    bool created = connection_
                       ->call(id, wire::Body::CreateTopicOk, fbb, "CreateTopic",
                              Clock::now() + connection_->options().timeout)
                       .created;
    // It ends with the connection: made again on the next one.
    if (temporary) connection_->remember_temporary(name, fbb);
    return created;
  } catch (const Error& e) {
    rethrow_with_context(e, "create of topic " + name);
  }
}

void Client::alter_topic(const std::string& name,
                         const TopicSettings& settings) {
  flatbuffers::FlatBufferBuilder fbb(256);
  uint64_t id = connection_->next_request_id();
  auto topic = fbb.CreateString(name);
  auto wire_settings = build_settings(fbb, settings);
  frame::finish(fbb, wire::Body::AlterTopic,
                wire::CreateAlterTopic(fbb, id, topic, wire_settings).Union());
  try {
    connection_->call(id, wire::Body::AlterTopicOk, fbb, "AlterTopic",
                      Clock::now() + connection_->options().timeout);
  } catch (const Error& e) {
    rethrow_with_context(e, "alter of topic " + name);
  }
}

void Client::delete_topic(const std::string& name) {
  flatbuffers::FlatBufferBuilder fbb(128);
  uint64_t id = connection_->next_request_id();
  auto topic = fbb.CreateString(name);
  frame::finish(fbb, wire::Body::DeleteTopic,
                wire::CreateDeleteTopic(fbb, id, topic).Union());
  try {
    // Not sent again after a lost connection: the second would say
    // UnknownTopic if the first was done.
    connection_->call(id, wire::Body::DeleteOk, fbb, "DeleteTopic",
                      Clock::now() + connection_->options().timeout,
                      Connection::Resend::kNever);
    connection_->forget_temporary(name);
  } catch (const Error& e) {
    rethrow_with_context(e, "delete of topic " + name);
  }
}

void Client::delete_subscription(const std::string& topic,
                                 const std::string& name) {
  flatbuffers::FlatBufferBuilder fbb(128);
  uint64_t id = connection_->next_request_id();
  auto topic_str = fbb.CreateString(topic);
  auto name_str = fbb.CreateString(name);
  frame::finish(
      fbb, wire::Body::DeleteSubscription,
      wire::CreateDeleteSubscription(fbb, id, topic_str, name_str).Union());
  try {
    connection_->call(id, wire::Body::DeleteOk, fbb, "DeleteSubscription",
                      Clock::now() + connection_->options().timeout,
                      Connection::Resend::kNever);
  } catch (const Error& e) {
    rethrow_with_context(e, "delete of subscription " + name + " on " + topic);
  }
}

void Client::close() { connection_->close(); }

bool Client::connected() const { return connection_->connected(); }

}  // namespace tern
