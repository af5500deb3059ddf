// Broker: construction, loading what the store holds, and the two things
// that run on their own on the loop: after_io() after every iteration
// (cursor writes, commit kick, dispatch, socket writes) and the tick
// (ack deadlines, retries). The rest of the Broker is in the files named
// in broker.h, one concern each.
#include "broker.h"

#include <algorithm>
#include <unordered_set>

#include "clock.h"
#include "connection.h"
#include "log.h"
#include "login.h"
#include "subscription.h"
#include "topic.h"

namespace tern {

bool within_limit(size_t count, size_t limit, const char* what,
                  Refusal* refusal) {
  if (count < limit) return true;
  refusal->code = wire::ErrorCode::LimitExceeded;
  refusal->message = "the broker's limit of " + std::to_string(limit) + " " +
                     what + " is reached";
  return false;
}

Broker::Broker(const Config& config, storage::Store& store, Reread reread)
    : config_(config),
      reread_config_(std::move(reread)),
      store_(store),
      memory_(config.memory_budget_bytes) {
  uv_loop_init(&loop_);
  // A batch must carry the state of every topic it appends to or removes
  // from, also when the committer hands it over on its own as the previous
  // commit returns: else a crash could leave messages past the stored next
  // offset, to be overwritten after the restart.
  committer_ =
      std::make_unique<Committer>(&loop_, store_, config_.fsync, [this] {
        write_topic_states();
        write_staged_sequences();
      });
  worker_ = std::make_unique<Worker>(&loop_);
  reader_ = std::make_unique<Worker>(&loop_);
  login_ = std::make_unique<Worker>(&loop_);
  if (!config_.users.empty()) unusable_hash_ = unusable_password_hash();
}

Broker::~Broker() {
  committer_.reset();
  worker_.reset();
  reader_.reset();
  login_.reset();
  uv_loop_close(&loop_);
}

bool Broker::load() {
  std::vector<storage::TopicRecord> topics;
  storage::Status status = store_.load_topics(&topics);
  if (!status.is_ok()) {
    LOG_ERROR("cannot load topics: %s", status.message().c_str());
    return false;
  }
  std::unordered_set<uint64_t> gone;  // temporary topics of a past run
  for (auto& t : topics) {
    next_topic_id_ = std::max(next_topic_id_, t.id + 1);
    if (t.settings.temporary) {
      // Their connections ended with the process that served them.
      gone.insert(t.id);
      write_metadata([id = t.id](storage::Batch& b) { b.delete_topic(id); });
      continue;
    }
    add_topic(t);
  }
  std::vector<storage::SubscriptionRecord> subscriptions;
  status = store_.load_subscriptions(&subscriptions);
  if (!status.is_ok()) {
    LOG_ERROR("cannot load subscriptions: %s", status.message().c_str());
    return false;
  }
  for (auto& s : subscriptions) {
    auto it = topics_by_id_.find(s.topic_id);
    if (it == topics_by_id_.end()) {
      if (gone.count(s.topic_id)) continue;
      LOG_WARN("subscription %s belongs to unknown topic id %llu; ignored",
               s.name.c_str(), (unsigned long long)s.topic_id);
      continue;
    }
    Topic& topic = *it->second;
    AckSet acks(s.cursor);
    uint64_t start = acks.floor();
    // As last stored; each Subscribe may change them again.
    SubscriptionSettings settings;
    settings.ack_timeout_ms =
        s.ack_timeout_ms ? s.ack_timeout_ms : config_.default_ack_timeout_ms;
    settings.max_deliveries = s.max_deliveries;
    settings.dead_letter_topic = s.dead_letter_topic.empty()
                                     ? topic.name() + ".dlq"
                                     : s.dead_letter_topic;
    settings.retry_delays_ms =
        s.retry_delays_ms.empty() ? config_.retry_delays_ms : s.retry_delays_ms;
    Subscription& restored =
        topic.add_subscription(std::make_unique<Subscription>(
            topic, s.name, std::move(settings), std::move(acks), start, *this));
    restored.restore(s.redeliveries, s.skipped, uv_now(&loop_), unix_ms());
    ++subscription_count_;
  }
  std::vector<storage::DedupeRecord> ids;
  status = store_.load_dedupe(&ids);
  if (!status.is_ok()) {
    LOG_ERROR("cannot load de-duplication ids: %s", status.message().c_str());
    return false;
  }
  std::sort(ids.begin(), ids.end(), [](const auto& a, const auto& b) {
    return a.expires_ms < b.expires_ms;
  });
  int64_t now = unix_ms();
  for (auto& d : ids) {
    auto it = topics_by_id_.find(d.topic_id);
    if (it != topics_by_id_.end() && d.expires_ms > now)
      it->second->remember_id(d.id, d.offset, d.expires_ms);
    else
      committer_->batch().delete_dedupe(d.topic_id, d.id);
  }
  std::vector<storage::SequencesRecord> runs;
  status = store_.load_sequences(&runs);
  if (!status.is_ok()) {
    LOG_ERROR("cannot load producer sequences: %s", status.message().c_str());
    return false;
  }
  for (const auto& r : runs) {
    // Expired ones go with the next sweep.
    auto it = topics_by_id_.find(r.topic_id);
    if (it != topics_by_id_.end())
      it->second->sequences().restore(r.producer, r.first_sequence, r.count,
                                      r.first_offset, r.expires_ms);
    else
      committer_->batch().delete_sequences(
          r.topic_id, r.producer, r.first_sequence, r.first_sequence + 1);
  }
  for (auto& [name, topic] : topics_) dedupe_ids_ += topic->dedupe_entries();
  if (!load_schedules()) return false;
  LOG_INFO(
      "loaded %zu topics, %zu subscriptions, %zu message ids and %zu producer "
      "sequence runs from %s",
      topics.size(), subscriptions.size(), ids.size(), runs.size(),
      config_.data_dir.c_str());
  return true;
}

void Broker::on_check(uv_check_t* handle) {
  static_cast<Broker*>(handle->data)->after_io();
}

void Broker::after_io() {
  // First, while no subscription holds a record pointer: what the last
  // iteration appended and read back may have gone past the budget.
  memory_.trim();
  // Acks and nacks schedule a dispatch; their cursor changes (and the dead
  // letters of a nack) go into this very batch.
  for (Subscription* s : to_dispatch_) note_cursor(*s);
  write_cursors();
  // Before dispatching: a commit that completes right away (--fsync never)
  // schedules deliveries that can go out in this same iteration.
  committer_->kick();

  uint64_t now = uv_now(&loop_);
  int64_t wall_now = unix_ms();
  // Swapped, not moved: both sets keep their buckets from one iteration to
  // the next. Dispatching may schedule more, for the next iteration.
  dispatching_.swap(to_dispatch_);
  for (Subscription* s : dispatching_) {
    s->dispatch(now, wall_now);
    note_cursor(*s);
  }
  dispatching_.clear();
  // What dispatching changed (redeliveries, dead letters, skipped messages)
  // is written now, into the batch that holds the dead letters it appended:
  // left to the next iteration, a commit finishing in between could seal
  // that batch first, and a crash then would keep a dead letter whose
  // message is delivered (and dead-lettered) again.
  write_cursors();

  for (auto& [id, connection] : connections_) connection->flush();
  memory_.shed();
  if (stopping_) return;
  if (to_dispatch_.empty())
    uv_idle_stop(&idle_);
  else
    uv_idle_start(&idle_, [](uv_idle_t*) {});
}

void Broker::schedule_dispatch(Subscription& subscription) {
  if (subscription.has_consumers()) to_dispatch_.insert(&subscription);
}

void Broker::on_tick(uv_timer_t* handle) {
  static_cast<Broker*>(handle->data)->expire();
}

void Broker::expire() {
  for (auto& write : std::exchange(retry_writes_, {}))
    write_metadata(std::move(write));
  for (auto& [topic_id, name] : std::exchange(retry_cursors_, {})) {
    Topic* topic = find_topic(topic_id);
    if (Subscription* s = topic ? topic->find_subscription(name) : nullptr)
      to_persist_.insert(s);
  }

  uint64_t now = uv_now(&loop_);
  int64_t wall_now = unix_ms();
  close_silent_connections(now);
  close_dead_connections(now);
  publish_stats(now);
  refuse_logins(now);
  for (auto it = reread_.begin(); it != reread_.end();) {
    Topic* topic = find_topic(it->first);
    if (topic != nullptr && it->second > now) {
      ++it;
      continue;
    }
    if (topic != nullptr)
      for (auto& s : topic->subscriptions()) schedule_dispatch(*s);
    it = reread_.erase(it);
  }
  for (auto& [name, topic] : topics_) {
    for (auto& s : topic->subscriptions())
      if (s->expire(now)) schedule_dispatch(*s);
    std::vector<std::string> expired = topic->expire_ids(wall_now);
    dedupe_ids_ -= expired.size();
    for (const std::string& id : expired)
      committer_->batch().delete_dedupe(topic->id(), id);
    auto runs = topic->sequences().expire(wall_now);
    dedupe_ids_ -= runs.size();
    for (const auto& run : runs)
      committer_->batch().delete_sequences(topic->id(), run.producer, run.first,
                                           run.end);
  }
}

}  // namespace tern
