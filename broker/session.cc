#include "session.h"

#include <algorithm>

#include "broker.h"
#include "connection.h"
#include "log.h"
#include "subscription.h"
#include "topic.h"
#include "units.h"
#include "wildcard.h"

namespace tern {

namespace {
constexpr uint32_t kMaxPrefetch = 1000000;
// Hello.heartbeat_ms is kept within these: a shorter one would cost the
// client and the broker a frame every few milliseconds.
constexpr uint32_t kMinHeartbeatMs = 100, kMaxHeartbeatMs = 3600000;

std::string str(const flatbuffers::String* s) {
  return s ? std::string(s->data(), s->size()) : std::string();
}

// Absent settings are the defaults: no limits.
storage::TopicSettings topic_settings(const wire::TopicSettings* t) {
  storage::TopicSettings settings;
  if (t != nullptr) {
    settings.max_age_ms = t->max_age_ms();
    settings.max_bytes = t->max_bytes();
    settings.max_messages = t->max_messages();
    settings.work_queue = t->work_queue();
    settings.dead_letter_expired = t->dead_letter_expired();
  }
  return settings;
}
}  // namespace

Session::Session(Broker& broker, Connection& connection)
    : broker_(broker), connection_(connection) {}

void Session::on_frame(const wire::Frame& frame, uint32_t bytes) {
  wire::Body type = frame.body_type();
  broker_.count_frame(type);
  if (!greeted_) {
    if (type != wire::Body::Hello) {
      connection_.fail(0, wire::ErrorCode::HelloRequired,
                       std::string("the first frame must be Hello, not ") +
                           frame::body_name(type));
      return;
    }
    on_hello(*frame.body_as_Hello());
    return;
  }
  switch (type) {
    case wire::Body::Publish:
      return on_publish(*frame.body_as_Publish(), bytes);
    case wire::Body::Transaction:
      return on_transaction(*frame.body_as_Transaction(), bytes);
    case wire::Body::Ack:
      return on_ack(*frame.body_as_Ack());
    case wire::Body::Nack:
      return on_nack(*frame.body_as_Nack());
    case wire::Body::Subscribe:
      return on_subscribe(*frame.body_as_Subscribe());
    case wire::Body::Unsubscribe:
      return on_unsubscribe(*frame.body_as_Unsubscribe());
    case wire::Body::Ping:
      return on_ping(*frame.body_as_Ping());
    case wire::Body::ListTopics:
      return on_list_topics(*frame.body_as_ListTopics());
    case wire::Body::ResetSubscription:
      return on_reset(*frame.body_as_ResetSubscription());
    case wire::Body::CreateTopic:
      return on_create_topic(*frame.body_as_CreateTopic());
    case wire::Body::AlterTopic:
      return on_alter_topic(*frame.body_as_AlterTopic());
    case wire::Body::DeleteTopic:
      return on_delete_topic(*frame.body_as_DeleteTopic());
    case wire::Body::DeleteSubscription:
      return on_delete_subscription(*frame.body_as_DeleteSubscription());
    case wire::Body::Hello:
      return connection_.fail(frame.body_as_Hello()->request_id(),
                              wire::ErrorCode::HelloRequired,
                              "Hello was already sent on this connection");
    default:
      return connection_.fail(0, wire::ErrorCode::NotAllowed,
                              std::string(frame::body_name(type)) +
                                  " is sent by the broker, not a client");
  }
}

void Session::on_hello(const wire::Hello& hello) {
  if (hello.protocol_version() != frame::kProtocolVersion) {
    connection_.fail(hello.request_id(), wire::ErrorCode::UnsupportedVersion,
                     "protocol version " +
                         std::to_string(hello.protocol_version()) +
                         " is not supported; this broker speaks version " +
                         std::to_string(frame::kProtocolVersion));
    return;
  }
  client_name_ = str(hello.client_name());
  LOG_DEBUG("connection %s: hello from '%s'", connection_.peer().c_str(),
            client_name_.c_str());
  heartbeat_ms_ = hello.heartbeat_ms() == 0
                      ? 0
                      : std::clamp<uint32_t>(hello.heartbeat_ms(),
                                             kMinHeartbeatMs, kMaxHeartbeatMs);
  if (broker_.config().users.empty()) return greet(hello.request_id());
  // Frames sent after the Hello wait until the broker knows who this is.
  connection_.pause_reading();
  broker_.log_in(connection_.id(), hello.request_id(),
                 {str(hello.user()), str(hello.password()),
                  str(hello.auth_token())});
}

void Session::greet(uint64_t request_id, std::string user,
                    Permissions permissions) {
  greeted_ = true;
  user_ = std::move(user);
  permissions_ = std::move(permissions);
  connection_.expect_heartbeat(heartbeat_ms_);
  flatbuffers::FlatBufferBuilder fbb(128);
  auto name = fbb.CreateString("tern-broker");
  frame::finish(fbb, wire::Body::HelloOk,
                wire::CreateHelloOk(fbb, request_id, frame::kProtocolVersion,
                                    name, broker_.config().max_frame_bytes,
                                    heartbeat_ms_)
                    .Union());
  connection_.send(fbb);
}

std::unique_ptr<Consumer> Session::make_consumer(uint64_t id,
                                                 Subscription& subscription,
                                                 uint32_t prefetch) {
  auto consumer =
      std::make_unique<Consumer>(id, connection_, subscription, prefetch);
  consumer->grants_replies = needs_reply_rights();
  subscription.add_consumer(*consumer);
  return consumer;
}

void Session::on_publish(const wire::Publish& publish, uint32_t bytes) {
  uint32_t limit = connection_.max_frame_bytes() - frame::kDeliverReserveBytes;
  if (bytes > limit)
    return reply_error(publish.request_id(), wire::ErrorCode::LimitExceeded,
                       "publish frame of " + std::to_string(bytes) +
                           " bytes exceeds " + std::to_string(limit) +
                           ", the maximum frame size less what delivering "
                           "its messages needs");
  std::string name = str(publish.topic());
  size_t count = publish.messages() ? publish.messages()->size() : 0;
  if (publish.producer() != 0 && publish.sequence() > UINT64_MAX - count)
    return connection_.fail(0, wire::ErrorCode::BadFrame,
                            "Publish.sequence + message count exceeds 2^64-1");
  if (!may_publish(name, count, publish.request_id())) return;
  Refusal refusal;
  Topic* topic = broker_.topic(name, &refusal);
  if (topic == nullptr)
    return reply_error(publish.request_id(), refusal.code, refusal.message);
  if (publish.confirm()) connection_.owe_reply();
  broker_.publish(connection_.id(), *topic, publish);
}

void Session::on_subscribe(const wire::Subscribe& subscribe) {
  uint64_t request_id = subscribe.request_id();
  if (subscribe.prefetch() == 0 || subscribe.prefetch() > kMaxPrefetch)
    return reply_error(request_id, wire::ErrorCode::InvalidSubscription,
                       "prefetch must be between 1 and " +
                           std::to_string(kMaxPrefetch));
  SubscribeRequest request;
  request.subscription = str(subscribe.subscription());
  request.start = subscribe.start();
  request.start_offset = subscribe.start_offset();
  request.start_time_ms = subscribe.start_time_ms();
  request.ack_timeout_ms = subscribe.ack_timeout_ms();
  request.max_deliveries = subscribe.max_deliveries();
  request.dead_letter_topic = str(subscribe.dead_letter_topic());
  if (const auto* delays = subscribe.retry_delays_ms()) {
    if (delays->size() > cli::kMaxRetryDelays)
      return reply_error(
          request_id, wire::ErrorCode::InvalidSubscription,
          "at most " + std::to_string(cli::kMaxRetryDelays) + " retry delays");
    for (uint32_t delay : *delays) {
      if (delay > cli::kMaxRetryDelayMs)
        return reply_error(request_id, wire::ErrorCode::InvalidSubscription,
                           "a retry delay may be at most a day (" +
                               std::to_string(cli::kMaxRetryDelayMs) +
                               " ms), not " + std::to_string(delay) + " ms");
      request.retry_delays_ms.push_back(delay);
    }
  }
  std::string topic_name = str(subscribe.topic());
  // Its nacks put messages into the dead-letter topic: naming one is
  // publishing to it. The default, <topic>.dlq, is always allowed.
  if (!request.dead_letter_topic.empty() &&
      !permitted(Action::kPublish, request.dead_letter_topic,
                 "dead-letter (publish) to", request_id))
    return;
  if (is_pattern(topic_name))
    return subscribe_wildcard(request_id, topic_name, std::move(request),
                              subscribe.prefetch());

  if (!may_subscribe(topic_name, request_id)) return;
  Refusal refusal;
  Topic* topic = broker_.topic(topic_name, &refusal);
  if (topic == nullptr)
    return reply_error(request_id, refusal.code, refusal.message);
  Subscription* subscription = broker_.subscription(*topic, request, &refusal);
  if (subscription == nullptr)
    return reply_error(request_id, refusal.code, refusal.message);

  uint64_t id = next_consumer_id_++;
  consumers_[id] = make_consumer(id, *subscription, subscribe.prefetch());

  reply_subscribed(request_id, id, request.subscription);
  broker_.schedule_dispatch(*subscription);
}

void Session::subscribe_wildcard(uint64_t request_id,
                                 const std::string& pattern,
                                 SubscribeRequest request, uint32_t prefetch) {
  std::string why;
  if (!valid_pattern(pattern, &why))
    return reply_error(request_id, wire::ErrorCode::InvalidTopic, why);
  if (!request.subscription.empty())
    return reply_error(request_id, wire::ErrorCode::InvalidSubscription,
                       "a wildcard subscription is ephemeral: it cannot "
                       "have a name");
  // Checked here once, not per topic as parts attach: a dead-letter topic
  // the pattern matches would be its own topic's on one of them.
  const std::string& dlq = request.dead_letter_topic;
  if (!dlq.empty() && (!valid_topic_name(dlq, &why) || is_inbox(dlq) ||
                       pattern_matches(pattern, dlq)))
    return reply_error(request_id, wire::ErrorCode::InvalidSubscription,
                       "dead-letter topic '" + dlq +
                           "' must be a topic name the pattern does not "
                           "match, and not an inbox");
  uint64_t id = next_consumer_id_++;
  wildcards_[id] = {std::move(request), prefetch, {}};
  // SubscribeOk goes first: deliveries only start in the broker's next
  // after_io().
  reply_subscribed(request_id, id, "");
  broker_.add_wildcard(*this, id, pattern);
}

bool Session::attach_wildcard(uint64_t consumer_id, Topic& topic,
                              Refusal* refusal) {
  Wildcard& wildcard = wildcards_.at(consumer_id);
  // Topics the user may not read are passed over, not an error: the
  // pattern is the user's view of the topics it may read.
  if (!permissions_.subscribe.allows(topic.name())) return true;
  Subscription* subscription =
      broker_.subscription(topic, wildcard.request, refusal);
  if (subscription == nullptr) {
    refusal->message =
        "cannot follow topic " + topic.name() + ": " + refusal->message;
    return false;
  }
  wildcard.parts[topic.name()] =
      make_consumer(consumer_id, *subscription, wildcard.prefetch);
  broker_.schedule_dispatch(*subscription);
  return true;
}

void Session::close_wildcard(uint64_t consumer_id, const Refusal& refusal) {
  auto w = wildcards_.find(consumer_id);
  if (w == wildcards_.end()) return;
  LOG_WARN("connection %s: wildcard consumer %llu closed: %s",
           connection_.peer().c_str(), (unsigned long long)consumer_id,
           refusal.message.c_str());
  end_wildcard(consumer_id, w->second);
  wildcards_.erase(w);
  send_consumer_closed(consumer_id, refusal.code, refusal.message);
}

void Session::reply_subscribed(uint64_t request_id, uint64_t consumer_id,
                               const std::string& name) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto sub_name = fbb.CreateString(name);
  frame::finish(
      fbb, wire::Body::SubscribeOk,
      wire::CreateSubscribeOk(fbb, request_id, consumer_id, sub_name).Union());
  connection_.send(fbb);
}

void Session::on_unsubscribe(const wire::Unsubscribe& unsubscribe) {
  uint64_t id = unsubscribe.consumer_id();
  if (auto it = consumers_.find(id); it != consumers_.end()) {
    detach(*it->second);
    consumers_.erase(it);
  } else if (auto w = wildcards_.find(id); w != wildcards_.end()) {
    end_wildcard(id, w->second);
    wildcards_.erase(w);
  } else {
    return reply_error(unsubscribe.request_id(),
                       wire::ErrorCode::UnknownConsumer,
                       "no consumer " + std::to_string(id) +
                           " on this connection");
  }
  flatbuffers::FlatBufferBuilder fbb(64);
  frame::finish(fbb, wire::Body::UnsubscribeOk,
                wire::CreateUnsubscribeOk(fbb, unsubscribe.request_id())
                    .Union());
  connection_.send(fbb);
}

Consumer* Session::consumer_of(uint64_t consumer_id,
                               const flatbuffers::String* topic,
                               bool* wildcard) {
  *wildcard = false;
  if (auto it = consumers_.find(consumer_id); it != consumers_.end())
    return it->second.get();
  auto w = wildcards_.find(consumer_id);
  if (w == wildcards_.end()) return nullptr;
  *wildcard = true;
  if (topic == nullptr) return nullptr;
  auto part = w->second.parts.find(topic->str());
  return part == w->second.parts.end() ? nullptr : part->second.get();
}

Consumer* Session::find_consumer(uint64_t consumer_id,
                                 const flatbuffers::String* topic,
                                 const char* what) {
  bool wildcard;
  if (Consumer* consumer = consumer_of(consumer_id, topic, &wildcard))
    return consumer;
  if (!wildcard) {
    // Ids are handed out in order: one below the next was this connection's
    // and is closed now. Acks racing a close (an Unsubscribe, or a
    // ConsumerClosed on its way) are normal, and there is nothing to settle.
    if (consumer_id == 0 || consumer_id >= next_consumer_id_)
      reply_error(0, wire::ErrorCode::UnknownConsumer,
                  std::string(what) + " for unknown consumer " +
                      std::to_string(consumer_id));
    return nullptr;
  }
  if (topic == nullptr)
    reply_error(0, wire::ErrorCode::InvalidSubscription,
                std::string(what) + " for wildcard consumer " +
                    std::to_string(consumer_id) + " must name the topic");
  // Else the topic was deleted since: nothing left to settle.
  return nullptr;
}

// Applies `settle` to each range of an Ack or Nack.
template <typename Frame, typename Settle>
void Session::settle(const Frame& frame, const char* what, Settle settle) {
  Consumer* found = find_consumer(frame.consumer_id(), frame.topic(), what);
  if (found == nullptr) return;
  Consumer& consumer = *found;
  if (frame.ranges()) {
    for (const wire::OffsetRange* range : *frame.ranges())
      settle(consumer, range->first(), range->last());
  }
  // Settled messages return credit, so there may be more to send; the
  // broker also writes the changed cursor from there.
  broker_.schedule_dispatch(consumer.subscription);
}

void Session::on_ack(const wire::Ack& ack) {
  settle(ack, "ack", [](Consumer& c, uint64_t first, uint64_t last) {
    c.subscription.ack(c, first, last);
  });
}

void Session::on_nack(const wire::Nack& nack) {
  uint64_t now = broker_.now_ms();
  settle(nack, "nack", [&](Consumer& c, uint64_t first, uint64_t last) {
    c.subscription.nack(c, first, last, nack.delay_ms(), nack.dead_letter(),
                        now);
  });
}

void Session::on_ping(const wire::Ping& ping) {
  flatbuffers::FlatBufferBuilder fbb(64);
  frame::finish(fbb, wire::Body::Pong,
                wire::CreatePong(fbb, ping.request_id()).Union());
  connection_.send(fbb);
}

void Session::on_list_topics(const wire::ListTopics& list) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::TopicInfo>> topics;
  for (Topic* topic : broker_.topics(str(list.topic()))) {
    // A user sees the topics it may publish to or subscribe to.
    if (!permissions_.publish.allows(topic->name()) &&
        !permissions_.subscribe.allows(topic->name()))
      continue;
    std::vector<flatbuffers::Offset<wire::SubscriptionInfo>> subscriptions;
    for (const auto& s : topic->subscriptions()) {
      subscriptions.push_back(wire::CreateSubscriptionInfo(
          fbb, fbb.CreateString(s->name()), uint32_t(s->consumer_count()),
          s->acks().floor(), s->lag(), uint32_t(s->pending_count()),
          uint32_t(s->waiting_count()), s->settings().ack_timeout_ms,
          s->settings().max_deliveries,
          fbb.CreateString(s->settings().dead_letter_topic), s->skipped(),
          uint32_t(s->dead_letter_blocked()),
          s->dead_letter_blocked() == 0
              ? 0
              : fbb.CreateString(s->dead_letter_error()),
          fbb.CreateVector(s->settings().retry_delays_ms)));
    }
    const storage::TopicSettings& t = topic->settings();
    storage::TopicState state = topic->state();
    topics.push_back(wire::CreateTopicInfo(
        fbb, fbb.CreateString(topic->name()), state.first_offset,
        state.next_offset, fbb.CreateVector(subscriptions),
        wire::CreateTopicSettings(fbb, t.max_age_ms, t.max_bytes,
                                  t.max_messages, t.work_queue,
                                  t.dead_letter_expired),
        state.messages, state.bytes, t.temporary, topic->disk_bytes(),
        topic->memory_bytes(), topic->schedule().count));
  }
  const MemoryBudget& memory = broker_.memory();
  frame::finish(
      fbb, wire::Body::TopicList,
      wire::CreateTopicList(fbb, list.request_id(), fbb.CreateVector(topics),
                            memory.limit(), memory.cached(), memory.output())
          .Union());
  connection_.send(fbb);
}

void Session::on_reset(const wire::ResetSubscription& reset) {
  if (!permitted(Action::kAdmin, str(reset.topic()), "reset a subscription of",
                 reset.request_id()))
    return;
  Refusal refusal;
  if (!broker_.reset(connection_.id(), reset, &refusal))
    return reply_error(reset.request_id(), refusal.code, refusal.message);
}

void Session::on_create_topic(const wire::CreateTopic& create) {
  storage::TopicSettings settings = topic_settings(create.settings());
  settings.temporary = create.temporary();
  std::string name = str(create.topic());
  // An inbox is this connection's own (nobody else may read it): making one
  // needs no permission.
  bool own_inbox = settings.temporary && is_inbox(name);
  if (!own_inbox &&
      !permitted(Action::kAdmin, name, "create topic", create.request_id()))
    return;
  bool created;
  Refusal refusal;
  if (!broker_.create_topic(name, settings, connection_.id(),
                            &created, &refusal))
    return reply_error(create.request_id(), refusal.code, refusal.message);
  connection_.owe_reply();
  broker_.reply_when_committed(
      connection_.id(), create.request_id(),
      [request_id = create.request_id(),
       created](flatbuffers::FlatBufferBuilder& fbb) {
        frame::finish(
            fbb, wire::Body::CreateTopicOk,
            wire::CreateCreateTopicOk(fbb, request_id, created).Union());
      });
}

void Session::on_alter_topic(const wire::AlterTopic& alter) {
  if (!permitted(Action::kAdmin, str(alter.topic()), "alter topic",
                 alter.request_id()))
    return;
  Refusal refusal;
  if (!broker_.alter_topic(str(alter.topic()), topic_settings(alter.settings()),
                           &refusal))
    return reply_error(alter.request_id(), refusal.code, refusal.message);
  connection_.owe_reply();
  broker_.reply_when_committed(
      connection_.id(), alter.request_id(),
      [request_id = alter.request_id()](flatbuffers::FlatBufferBuilder& fbb) {
        frame::finish(fbb, wire::Body::AlterTopicOk,
                      wire::CreateAlterTopicOk(fbb, request_id).Union());
      });
}

void Session::on_delete_topic(const wire::DeleteTopic& request) {
  if (!permitted(Action::kAdmin, str(request.topic()), "delete topic",
                 request.request_id()))
    return;
  Refusal refusal;
  if (!broker_.delete_topic(str(request.topic()), &refusal))
    return reply_error(request.request_id(), refusal.code, refusal.message);
  reply_deleted(request.request_id());
}

void Session::on_delete_subscription(const wire::DeleteSubscription& request) {
  if (!permitted(Action::kAdmin, str(request.topic()),
                 "delete a subscription of", request.request_id()))
    return;
  Refusal refusal;
  if (!broker_.delete_subscription(str(request.topic()),
                                   str(request.subscription()), &refusal))
    return reply_error(request.request_id(), refusal.code, refusal.message);
  reply_deleted(request.request_id());
}

void Session::reply_deleted(uint64_t request_id) {
  connection_.owe_reply();
  broker_.reply_when_committed(
      connection_.id(), request_id,
      [request_id](flatbuffers::FlatBufferBuilder& fbb) {
        frame::finish(fbb, wire::Body::DeleteOk,
                      wire::CreateDeleteOk(fbb, request_id).Union());
      });
}

void Session::close_consumer(Consumer& consumer, wire::ErrorCode code,
                             const std::string& why) {
  uint64_t id = consumer.id;
  consumer.subscription.remove_consumer(consumer);
  if (auto w = wildcards_.find(id); w != wildcards_.end()) {
    // One of its topics went; the wildcard consumer goes on with the rest.
    w->second.parts.erase(consumer.subscription.topic().name());
    return;
  }
  send_consumer_closed(id, code, why);
  consumers_.erase(id);
}

void Session::send_consumer_closed(uint64_t consumer_id, wire::ErrorCode code,
                                   const std::string& why) {
  flatbuffers::FlatBufferBuilder fbb(128 + why.size());
  frame::finish(
      fbb, wire::Body::ConsumerClosed,
      wire::CreateConsumerClosed(fbb, consumer_id, code, fbb.CreateString(why))
          .Union());
  connection_.send(fbb);
}

void Session::detach(Consumer& consumer) {
  Subscription& subscription = consumer.subscription;
  subscription.remove_consumer(consumer);
  broker_.consumer_left(subscription);
}

void Session::on_drained() {
  for (auto& [id, consumer] : consumers_)
    broker_.schedule_dispatch(consumer->subscription);
  for (auto& [id, wildcard] : wildcards_)
    for (auto& [topic, part] : wildcard.parts)
      broker_.schedule_dispatch(part->subscription);
}

void Session::end() {
  for (auto& [id, consumer] : consumers_) detach(*consumer);
  consumers_.clear();
  for (auto& [id, wildcard] : wildcards_) end_wildcard(id, wildcard);
  wildcards_.clear();
}

void Session::end_wildcard(uint64_t consumer_id, Wildcard& wildcard) {
  broker_.remove_wildcard(*this, consumer_id);
  for (auto& [topic, part] : wildcard.parts) detach(*part);
  wildcard.parts.clear();
}

void Session::reply_error(uint64_t request_id, wire::ErrorCode code,
                          const std::string& message) {
  flatbuffers::FlatBufferBuilder fbb(256);
  broker_.build_error(fbb, request_id, code, message);
  connection_.send(fbb);
}

}  // namespace tern
