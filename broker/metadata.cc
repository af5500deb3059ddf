// What the Broker writes besides messages, and how it makes sure it is
// stored: topic records and states, cursors, subscription settings, the
// retry of writes whose commit failed, and replies that wait for a commit.
#include "broker.h"
#include "clock.h"
#include "connection.h"
#include "subscription.h"
#include "topic.h"

namespace tern {

void Broker::write_metadata(std::function<void(storage::Batch&)> write) {
  write(committer_->batch());
  committer_->on_commit(
      [this, write = std::move(write)](const storage::Status& status) mutable {
        if (!status.is_ok()) retry_writes_.push_back(std::move(write));
      });
}

void Broker::persist_topic(Topic& topic) {
  write_metadata([this, id = topic.id()](storage::Batch& b) {
    if (Topic* t = find_topic(id))
      b.put_topic({id, t->name(), t->settings(), t->state()});
  });
}

void Broker::persist_settings(Subscription& subscription) {
  // By name, so a retry writes the settings of then, and none for a
  // subscription deleted meanwhile.
  write_metadata([this, id = subscription.topic().id(),
                  name = subscription.name()](storage::Batch& b) {
    Topic* topic = find_topic(id);
    Subscription* s = topic ? topic->find_subscription(name) : nullptr;
    if (s == nullptr) return;
    storage::SubscriptionRecord record;
    record.topic_id = id;
    record.name = name;
    record.max_deliveries = s->settings().max_deliveries;
    record.dead_letter_topic = s->settings().dead_letter_topic;
    record.retry_delays_ms = s->settings().retry_delays_ms;
    b.put_subscription_settings(record);
  });
}

void Broker::persist_cursor(Subscription& subscription) {
  to_persist_.insert(&subscription);
}

void Broker::note_cursor(Subscription& subscription) {
  if (subscription.take_cursor_changed() && subscription.durable())
    persist_cursor(subscription);
}

void Broker::write_cursors() {
  if (to_persist_.empty()) return;
  std::vector<std::pair<uint64_t, std::string>> persisted;
  for (Subscription* s : to_persist_) {
    storage::SubscriptionRecord record;
    record.topic_id = s->topic().id();
    record.name = s->name();
    record.ack_timeout_ms = s->settings().ack_timeout_ms;
    record.cursor = s->acks().to_cursor();
    record.redeliveries = s->redeliveries(uv_now(&loop_), unix_ms());
    record.skipped = s->skipped();
    committer_->batch().put_subscription(record);
    persisted.emplace_back(record.topic_id, record.name);
  }
  committer_->on_commit(
      [this, persisted = std::move(persisted)](const storage::Status& status) {
        if (!status.is_ok())
          retry_cursors_.insert(retry_cursors_.end(), persisted.begin(),
                                persisted.end());
      });
  to_persist_.clear();
}

void Broker::write_topic_states() {
  if (changed_topics_.empty()) return;
  for (uint64_t id : changed_topics_)
    committer_->batch().put_topic_state(id, find_topic(id)->state());
  // A failed batch leaves the stored state behind: write it again.
  committer_->on_commit([this, changed = std::move(changed_topics_)](
                            const storage::Status& status) {
    if (status.is_ok()) return;
    for (uint64_t id : changed)
      retry_writes_.push_back([this, id](storage::Batch& b) {
        if (Topic* t = find_topic(id)) b.put_topic_state(id, t->state());
      });
  });
  changed_topics_.clear();
}

void Broker::reply_when_committed(
    uint64_t connection_id, uint64_t request_id,
    std::function<void(flatbuffers::FlatBufferBuilder&)> build) {
  committer_->on_commit(
      [this, connection_id, request_id,
       build = std::move(build)](const storage::Status& status) {
        Connection* connection = find_connection(connection_id);
        if (connection == nullptr) return;
        flatbuffers::FlatBufferBuilder fbb(256);
        if (status.is_ok())
          build(fbb);
        else
          build_error(fbb, request_id, wire::ErrorCode::StorageFailure,
                      status.message());
        connection->send_owed(fbb);
      });
}

}  // namespace tern
