// Subscriptions as the Broker makes and ends them: the durable or
// ephemeral subscription a Subscribe attaches to (with its dead-letter
// topic checked up front), moving one to a start position (ResetSubscription,
// and start times looked up on the reader thread), consumers leaving, and
// deleting a durable subscription.
#include <cctype>
#include <memory>

#include "broker.h"
#include "connection.h"
#include "log.h"
#include "session.h"
#include "subscription.h"
#include "topic.h"
#include "wildcard.h"

namespace tern {

namespace {

bool known_start(wire::StartPosition position, Refusal* refusal) {
  if (position <= wire::StartPosition::MAX) return true;
  refusal->code = wire::ErrorCode::InvalidSubscription;
  refusal->message = "unknown start position " + std::to_string(int(position));
  return false;
}

// Subscription names: 1 to 200 bytes of letters, digits, '.', '_', '-'.
bool valid_subscription_name(const std::string& name, Refusal* refusal) {
  refusal->code = wire::ErrorCode::InvalidSubscription;
  if (name.empty() || name.size() > kMaxTopicNameBytes) {
    refusal->message = "subscription name must be 1 to " +
                       std::to_string(kMaxTopicNameBytes) + " bytes";
    return false;
  }
  for (unsigned char c : name) {
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-')) {
      refusal->message = "subscription name '" + name +
                         "' may only hold letters, digits, '.', '_' and '-'";
      return false;
    }
  }
  return true;
}

}  // namespace

Subscription* Broker::subscription(Topic& topic,
                                   const SubscribeRequest& request,
                                   Refusal* refusal) {
  const std::string& name = request.subscription;
  if (!name.empty() && !valid_subscription_name(name, refusal)) return nullptr;
  SubscriptionSettings settings;
  settings.ack_timeout_ms = request.ack_timeout_ms
                                ? request.ack_timeout_ms
                                : config_.default_ack_timeout_ms;
  settings.max_deliveries = request.max_deliveries;
  settings.dead_letter_topic = request.dead_letter_topic.empty()
                                   ? topic.name() + ".dlq"
                                   : request.dead_letter_topic;
  settings.retry_delays_ms = request.retry_delays_ms.empty()
                                 ? config_.retry_delays_ms
                                 : request.retry_delays_ms;
  if (!valid_dead_letter_topic(topic, settings.dead_letter_topic, refusal))
    return nullptr;
  if (Subscription* existing =
          name.empty() ? nullptr : topic.find_subscription(name)) {
    // The latest Subscribe's settings apply; an ack timeout of 0 and no
    // retry delays keep the ones the subscription has (persisted).
    SubscriptionSettings old = existing->settings();
    if (request.ack_timeout_ms == 0)
      settings.ack_timeout_ms = old.ack_timeout_ms;
    if (request.retry_delays_ms.empty())
      settings.retry_delays_ms = old.retry_delays_ms;
    existing->set_settings(std::move(settings));
    const SubscriptionSettings& now = existing->settings();
    if (now.ack_timeout_ms != old.ack_timeout_ms) persist_cursor(*existing);
    if (now.max_deliveries != old.max_deliveries ||
        now.dead_letter_topic != old.dead_letter_topic ||
        now.retry_delays_ms != old.retry_delays_ms)
      persist_settings(*existing);
    return existing;
  }
  if (!within_limit(subscription_count_, config_.max_subscriptions,
                    "subscriptions", refusal))
    return nullptr;
  if (!known_start(request.start, refusal)) return nullptr;
  // A new subscription starts at the topic's first message and is moved to
  // its start position from there: until a start time is looked up, a crash
  // delivers too much rather than too little.
  AckSet acks;
  acks.raise_floor(topic.first_offset());
  Subscription& s = topic.add_subscription(std::make_unique<Subscription>(
      topic, name, std::move(settings), std::move(acks), topic.first_offset(),
      *this));
  ++subscription_count_;
  if (s.durable()) {
    persist_cursor(s);
    persist_settings(s);
  }
  move_to_start(
      s, request.start, request.start_offset, request.start_time_ms,
      [durable = s.durable(), name, topic_name = topic.name()](
          const Refusal& refusal, uint64_t start) {
        if (refusal.code != wire::ErrorCode::None)
          LOG_ERROR(
              "subscription %s on topic %s starts at its first "
              "message: %s",
              name.c_str(), topic_name.c_str(), refusal.message.c_str());
        else if (durable)
          LOG_INFO("subscription %s on topic %s created at offset %llu",
                   name.c_str(), topic_name.c_str(), (unsigned long long)start);
      });
  return &s;
}

bool Broker::valid_dead_letter_topic(const Topic& topic, const std::string& to,
                                     Refusal* refusal) const {
  // Checked up front: a message given up later has nowhere else to go. A
  // temporary topic's messages are dropped instead (see dead_letter()).
  if (topic.settings().temporary) return true;
  if (!valid_topic_name(to, &refusal->message)) {
    refusal->message = "dead-letter topic '" + to + "': " + refusal->message;
    if (to == topic.name() + ".dlq")
      refusal->message +=
          "; the topic's name leaves no room for '.dlq', so "
          "name a dead_letter_topic";
  } else if (to == topic.name()) {
    refusal->message = "a subscription's dead-letter topic cannot be its own";
  } else if (is_inbox(to)) {
    refusal->message = "a dead-letter topic cannot be an inbox (" + to +
                       "): it ends with its requester";
  } else {
    return true;
  }
  refusal->code = wire::ErrorCode::InvalidSubscription;
  return false;
}

bool Broker::reset(uint64_t connection_id,
                   const wire::ResetSubscription& request, Refusal* refusal) {
  std::string topic_name =
      request.topic() ? request.topic()->str() : std::string();
  std::string name =
      request.subscription() ? request.subscription()->str() : std::string();
  auto it = topics_.find(topic_name);
  Subscription* s = it == topics_.end() || name.empty()
                        ? nullptr
                        : it->second->find_subscription(name);
  refusal->code = wire::ErrorCode::InvalidSubscription;
  if (s == nullptr) {
    refusal->message =
        "no durable subscription " + name + " on topic " + topic_name;
    return false;
  }
  auto reply = [this, connection_id, request_id = request.request_id(), name,
                topic_name](const Refusal& refusal, uint64_t start) {
    if (refusal.code != wire::ErrorCode::None) {
      flatbuffers::FlatBufferBuilder fbb(128);
      build_error(fbb, request_id, refusal.code, refusal.message);
      if (Connection* connection = find_connection(connection_id))
        connection->send_owed(fbb);
      return;
    }
    LOG_INFO("subscription %s on topic %s reset to offset %llu", name.c_str(),
             topic_name.c_str(), (unsigned long long)start);
    // ResetOk promises the new position survives a crash: the cursor goes
    // into the filling batch now, and the reply waits for its commit.
    write_cursors();
    reply_when_committed(
        connection_id, request_id,
        [request_id, start](flatbuffers::FlatBufferBuilder& fbb) {
          frame::finish(fbb, wire::Body::ResetOk,
                        wire::CreateResetOk(fbb, request_id, start).Union());
        });
  };
  if (!known_start(request.start(), refusal)) return false;
  if (Connection* connection = find_connection(connection_id))
    connection->owe_reply();
  move_to_start(*s, request.start(), request.start_offset(),
                request.start_time_ms(), std::move(reply));
  return true;
}

void Broker::move_to_start(
    Subscription& subscription, wire::StartPosition position, uint64_t offset,
    int64_t time_ms,
    std::function<void(const Refusal& refusal, uint64_t start)> done) {
  if (position != wire::StartPosition::Time) {
    uint64_t start = subscription.topic().resolve_start(position, offset);
    subscription.reset(start);
    note_cursor(subscription);
    schedule_dispatch(subscription);
    return done(Refusal(), start);
  }
  uint64_t lookup = ++last_start_lookup_;
  subscription.hold(lookup);
  Topic& topic = subscription.topic();
  struct Result {
    storage::Status status = storage::Status::ok();
    uint64_t offset = 0;
  };
  auto result = std::make_shared<Result>();
  reader_->post(
      [this, id = topic.id(), first = topic.first_offset(),
       end = topic.committed_end(), time_ms, result] {
        result->status =
            store_.offset_at_time(id, first, end, time_ms, &result->offset);
      },
      [this, id = topic.id(), lookup, result, done = std::move(done)] {
        Refusal refusal;
        Topic* topic = find_topic(id);
        if (topic == nullptr) {
          refusal.code = wire::ErrorCode::Deleted;
          refusal.message = "the topic was deleted";
          return done(refusal, 0);
        }
        Subscription* held = nullptr;
        for (auto& s : topic->subscriptions())
          if (s->held_for() == lookup) held = s.get();
        uint64_t start = 0;
        if (!result->status.is_ok()) {
          refusal.code = wire::ErrorCode::StorageFailure;
          refusal.message = result->status.message();
          if (held) held->hold(0);
        } else {
          // Retention may have moved the topic's start on meanwhile.
          start =
              topic->resolve_start(wire::StartPosition::Offset, result->offset);
          if (held) held->reset(start);
        }
        if (held) {
          note_cursor(*held);
          schedule_dispatch(*held);
        }
        done(refusal, start);
      });
}

void Broker::consumer_left(Subscription& subscription) {
  note_cursor(subscription);
  if (!subscription.durable() && !subscription.has_consumers()) {
    to_dispatch_.erase(&subscription);
    subscription.topic().remove_subscription(subscription);
    --subscription_count_;
    return;
  }
  schedule_dispatch(subscription);
}

bool Broker::delete_subscription(const std::string& topic_name,
                                 const std::string& name, Refusal* refusal) {
  auto it = topics_.find(topic_name);
  Subscription* s = it == topics_.end() || name.empty()
                        ? nullptr
                        : it->second->find_subscription(name);
  if (s == nullptr) {
    refusal->code = it == topics_.end() ? wire::ErrorCode::UnknownTopic
                                        : wire::ErrorCode::UnknownSubscription;
    refusal->message = it == topics_.end() ? "no topic " + topic_name
                                           : "no durable subscription " + name +
                                                 " on topic " + topic_name;
    return false;
  }
  Topic& topic = *it->second;
  end_subscription(
      *s, "subscription " + name + " on topic " + topic_name + " was deleted");
  topic.remove_subscription(*s);
  // A subscription made again under the same name before a retry of this
  // delete must not lose its record.
  write_metadata([this, id = topic.id(), name](storage::Batch& b) {
    Topic* t = find_topic(id);
    if (t == nullptr || t->find_subscription(name) == nullptr)
      b.delete_subscription(id, name);
  });
  LOG_INFO("subscription %s on topic %s deleted", name.c_str(),
           topic_name.c_str());
  return true;
}

void Broker::end_subscription(Subscription& subscription,
                              const std::string& why) {
  std::vector<Consumer*> consumers = subscription.consumers();
  for (Consumer* c : consumers)
    c->connection.session().close_consumer(*c, wire::ErrorCode::Deleted, why);
  to_dispatch_.erase(&subscription);
  to_persist_.erase(&subscription);
  --subscription_count_;
}

Subscription* Broker::find_subscription(uint64_t topic_id,
                                        const std::string& name,
                                        const Subscription* was) {
  Topic* topic = find_topic(topic_id);
  if (topic == nullptr) return nullptr;
  if (!name.empty()) return topic->find_subscription(name);
  for (auto& s : topic->subscriptions())
    if (s.get() == was) return s.get();
  return nullptr;
}

}  // namespace tern
