#include "broker.h"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstring>

#include "clock.h"
#include "connection.h"
#include "copy.h"
#include "log.h"
#include "record.h"
#include "subscription.h"
#include "topic.h"
#include "wildcard.h"

namespace tern {

namespace {

// How often ack deadlines are checked; ack timeouts are this coarse.
constexpr uint64_t kTickMs = 50;
// How long after a failed read-back it is tried again: soon enough that a
// passing error costs a consumer little, late enough not to spin on a
// lasting one.
constexpr uint64_t kRereadDelayMs = 1000;

// Ages are compared with Unix milliseconds: beyond this one would wrap.
constexpr uint64_t kMaxAgeMs = 100ull * 365 * 86400000;

bool valid_settings(const storage::TopicSettings& settings, Refusal* refusal) {
  if (settings.max_age_ms <= kMaxAgeMs) return true;
  refusal->code = wire::ErrorCode::InvalidTopic;
  refusal->message = "max_age_ms must be at most " +
                     std::to_string(kMaxAgeMs) + " (100 years)";
  return false;
}

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

bool valid_topic(const std::string& name, Refusal* refusal) {
  if (valid_topic_name(name, &refusal->message)) return true;
  refusal->code = wire::ErrorCode::InvalidTopic;
  return false;
}

bool within_limit(size_t count, size_t limit, const char* what,
                  Refusal* refusal) {
  if (count < limit) return true;
  refusal->code = wire::ErrorCode::LimitExceeded;
  refusal->message = "the broker's limit of " + std::to_string(limit) + " " +
                     what + " is reached";
  return false;
}

}  // namespace

Broker::Broker(const Config& config, storage::Store& store)
    : config_(config), store_(store) {
  uv_loop_init(&loop_);
  // A batch must carry the state of every topic it appends to or removes
  // from, also when the committer hands it over on its own as the previous
  // commit returns: else a crash could leave messages past the stored next
  // offset, to be overwritten after the restart.
  committer_ = std::make_unique<Committer>(&loop_, store_, config_.fsync,
                                           [this] { write_topic_states(); });
  worker_ = std::make_unique<Worker>(&loop_);
  reader_ = std::make_unique<Worker>(&loop_);
}

Broker::~Broker() {
  committer_.reset();
  worker_.reset();
  reader_.reset();
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
    Subscription& restored = topic.add_subscription(
        std::make_unique<Subscription>(topic, s.name, std::move(settings),
                                       std::move(acks), start, *this));
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
  for (auto& [name, topic] : topics_) dedupe_ids_ += topic->id_count();
  LOG_INFO("loaded %zu topics, %zu subscriptions and %zu message ids from %s",
           topics.size(), subscriptions.size(), ids.size(),
           config_.data_dir.c_str());
  return true;
}

bool Broker::listen() {
  sockaddr_storage addr;
  const char* host = config_.listen_host.c_str();
  int rc = config_.listen_host.find(':') != std::string::npos
               ? uv_ip6_addr(host, config_.listen_port,
                             reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(host, config_.listen_port,
                             reinterpret_cast<sockaddr_in*>(&addr));
  if (rc == 0) {
    uv_tcp_init(&loop_, &server_);
    server_.data = this;
    rc = uv_tcp_bind(&server_, reinterpret_cast<sockaddr*>(&addr), 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 511,
                                on_connection);
    if (rc != 0) uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  }
  if (rc != 0) {
    LOG_ERROR("cannot listen on %s:%d: %s", host, config_.listen_port,
              uv_strerror(rc));
    return false;
  }
  LOG_INFO("listening on %s:%d (data %s, fsync %s)", host, config_.listen_port,
           config_.data_dir.c_str(), config_.fsync ? "always" : "never");
  return true;
}

int Broker::run() {
  bool ok = listen();
  if (ok) {
    uv_signal_init(&loop_, &sigint_);
    uv_signal_init(&loop_, &sigterm_);
    sigint_.data = sigterm_.data = this;
    uv_signal_start(&sigint_, on_signal, SIGINT);
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    uv_timer_init(&loop_, &tick_);
    tick_.data = this;
    uv_timer_start(&tick_, on_tick, kTickMs, kTickMs);
    uv_timer_init(&loop_, &retention_timer_);
    retention_timer_.data = this;
    uv_timer_start(&retention_timer_, on_retention_timer,
                   config_.retention_interval_ms,
                   config_.retention_interval_ms);
    uv_check_init(&loop_, &check_);
    check_.data = this;
    uv_check_start(&check_, on_check);
    uv_idle_init(&loop_, &idle_);
    uv_run(&loop_, UV_RUN_DEFAULT);
  } else {
    committer_->drain();
    worker_->stop();
    reader_->stop();
  }
  // Close whatever is still open so the loop can be closed.
  uv_run(&loop_, UV_RUN_DEFAULT);
  LOG_INFO("stopped");
  return ok ? 0 : 1;
}

void Broker::on_signal(uv_signal_t* handle, int signum) {
  LOG_INFO("received %s; shutting down", strsignal(signum));
  static_cast<Broker*>(handle->data)->shutdown();
}

void Broker::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  auto close = [](auto* handle) {
    uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr);
  };
  close(&server_);
  close(&sigint_);
  close(&sigterm_);
  close(&tick_);
  close(&retention_timer_);
  close(&check_);
  close(&idle_);
  for (auto& [id, connection] : connections_) connection->close();
  // Last cursor updates, then everything still queued is committed.
  after_io();
  committer_->drain();
  worker_->stop();
  reader_->stop();
}

void Broker::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Broker*>(server->data);
  if (status < 0) {
    LOG_WARN("accept failed: %s", uv_strerror(status));
    return;
  }
  uint64_t id = self->next_connection_id_++;
  auto connection = std::make_unique<Connection>(
      *self, id, self->config_.max_frame_bytes, self->config_.max_output_bytes);
  uv_tcp_init(&self->loop_, connection->tcp());
  Connection& c = *connection;
  // From here the handle is initialised: it is closed through the normal path.
  self->connections_[id] = std::move(connection);
  if (uv_accept(server, c.stream()) != 0) {
    c.close();
    return;
  }
  c.start();
  Refusal refusal;
  if (!within_limit(self->connections_.size() - 1,
                    self->config_.max_connections, "connections", &refusal)) {
    LOG_WARN("connection %s refused: %s", c.peer().c_str(),
             refusal.message.c_str());
    c.fail(0, refusal.code, refusal.message);
    return;
  }
  LOG_DEBUG("connection %s accepted", c.peer().c_str());
}

void Broker::forget(Connection& connection) {
  std::vector<Topic*> owned;
  for (auto& [topic_id, owner] : temporary_owner_)
    if (owner == connection.id()) owned.push_back(find_topic(topic_id));
  for (Topic* topic : owned) {
    LOG_DEBUG("temporary topic %s ends with its connection",
              topic->name().c_str());
    remove_topic(*topic);
  }
  connections_.erase(connection.id());
}

Connection* Broker::find_connection(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

Topic* Broker::topic(const std::string& name, Refusal* refusal) {
  auto it = topics_.find(name);
  if (it != topics_.end()) return it->second.get();
  // An inbox that does not exist has lost its requester: a reply to it must
  // fail, not create a topic nobody will ever read or delete.
  if (is_inbox(name)) {
    refusal->code = wire::ErrorCode::UnknownTopic;
    refusal->message = "no inbox " + name + " (its requester is gone)";
    return nullptr;
  }
  bool created;
  return create_topic(name, {}, 0, &created, refusal);
}

Topic* Broker::create_topic(const std::string& name,
                            const storage::TopicSettings& settings,
                            uint64_t owner, bool* created, Refusal* refusal) {
  *created = false;
  if (auto it = topics_.find(name); it != topics_.end()) {
    auto owner_of = temporary_owner_.find(it->second->id());
    bool owned_by_other =
        owner_of != temporary_owner_.end() && owner_of->second != owner;
    if (it->second->settings() == settings && !owned_by_other)
      return it->second.get();
    refusal->code = wire::ErrorCode::TopicExists;
    refusal->message = owned_by_other
                           ? "topic " + name +
                                 " is a temporary topic of another connection"
                           : "topic " + name + " exists with other settings";
    return nullptr;
  }
  if (!valid_topic(name, refusal) ||
      !within_limit(topics_.size(), config_.max_topics, "topics", refusal) ||
      !valid_settings(settings, refusal))
    return nullptr;
  if (is_inbox(name) && !settings.temporary) {
    refusal->code = wire::ErrorCode::InvalidTopic;
    refusal->message = "topics named _inbox.* must be temporary";
    return nullptr;
  }
  storage::TopicRecord record;
  record.id = next_topic_id_++;
  record.name = name;
  record.settings = settings;
  Topic& topic = add_topic(record);
  if (settings.temporary) {
    temporary_owner_[record.id] = owner;
  } else {
    // Wildcards never match temporary topics: inboxes are private. Those
    // that cannot follow the new topic are closed after the loop (closing
    // one changes wildcards_).
    std::vector<std::pair<Wildcard, Refusal>> failed;
    for (const Wildcard& w : wildcards_) {
      Refusal why;
      if (pattern_matches(w.pattern, name) &&
          !w.session->attach_wildcard(w.consumer_id, topic, &why))
        failed.emplace_back(w, std::move(why));
    }
    for (auto& [w, why] : failed) w.session->close_wildcard(w.consumer_id, why);
  }
  persist_topic(topic);
  changed_topics_.insert(record.id);
  *created = true;
  LOG_INFO("topic %s created", name.c_str());
  return &topic;
}

bool Broker::alter_topic(const std::string& name,
                         const storage::TopicSettings& settings,
                         Refusal* refusal) {
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    refusal->code = wire::ErrorCode::UnknownTopic;
    refusal->message = "no topic " + name;
    return false;
  }
  Topic& topic = *it->second;
  refusal->code = wire::ErrorCode::InvalidTopic;
  if (topic.settings().temporary) {
    refusal->message = "topic " + name + " is temporary: it cannot be altered";
    return false;
  }
  if (settings.work_queue != topic.settings().work_queue) {
    // Turning it on would delete at once what subscriptions acked but other
    // readers may still replay; turning it off changes what was promised.
    refusal->message = "work_queue is fixed when the topic is created";
    return false;
  }
  if (!valid_settings(settings, refusal)) return false;
  topic.set_settings(settings);
  persist_topic(topic);
  LOG_INFO("topic %s altered", name.c_str());
  return true;
}

void Broker::persist_topic(Topic& topic) {
  write_metadata([this, id = topic.id()](storage::Batch& b) {
    if (Topic* t = find_topic(id))
      b.put_topic({id, t->name(), t->settings(), t->state()});
  });
}

Topic& Broker::add_topic(const storage::TopicRecord& record) {
  auto topic = std::make_unique<Topic>(store_, *this, record,
                                       config_.tail_bytes_per_topic);
  topics_by_id_[record.id] = topic.get();
  return *(topics_[record.name] = std::move(topic));
}

Topic* Broker::find_topic(uint64_t id) {
  auto it = topics_by_id_.find(id);
  return it == topics_by_id_.end() ? nullptr : it->second;
}

bool Broker::delete_topic(const std::string& name, Refusal* refusal) {
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    refusal->code = wire::ErrorCode::UnknownTopic;
    refusal->message = "no topic " + name;
    return false;
  }
  LOG_INFO("topic %s deleted", name.c_str());
  remove_topic(*it->second);
  return true;
}

void Broker::remove_topic(Topic& topic) {
  uint64_t id = topic.id();
  std::string why = "topic " + topic.name() + " was deleted";
  for (auto& s : topic.subscriptions()) end_subscription(*s, why);
  write_metadata([id](storage::Batch& b) { b.delete_topic(id); });
  committer_->on_commit([this, id](const storage::Status& status) {
    if (status.is_ok())
      worker_->post([this, id] { store_.compact(id, UINT64_MAX); });
  });
  dedupe_ids_ -= topic.id_count();
  changed_topics_.erase(id);
  temporary_owner_.erase(id);
  retention_.erase(id);
  topics_by_id_.erase(id);
  std::string name = topic.name();
  topics_.erase(name);  // destroys it
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
    refusal->message = it == topics_.end()
                           ? "no topic " + topic_name
                           : "no durable subscription " + name +
                                 " on topic " + topic_name;
    return false;
  }
  Topic& topic = *it->second;
  end_subscription(*s, "subscription " + name + " on topic " + topic_name +
                           " was deleted");
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

void Broker::add_wildcard(Session& session, uint64_t consumer_id,
                          const std::string& pattern) {
  wildcards_.push_back({&session, consumer_id, pattern});
  Refusal refusal;
  for (auto& [name, topic] : topics_) {
    if (!topic->settings().temporary && pattern_matches(pattern, name) &&
        !session.attach_wildcard(consumer_id, *topic, &refusal))
      return session.close_wildcard(consumer_id, refusal);
  }
}

void Broker::remove_wildcard(Session& session, uint64_t consumer_id) {
  wildcards_.erase(std::remove_if(wildcards_.begin(), wildcards_.end(),
                                  [&](const Wildcard& w) {
                                    return w.session == &session &&
                                           w.consumer_id == consumer_id;
                                  }),
                   wildcards_.end());
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

void Broker::reply_when_committed(
    uint64_t connection_id, uint64_t request_id,
    std::function<void(flatbuffers::FlatBufferBuilder&)> build) {
  committer_->on_commit([this, connection_id, request_id,
                         build = std::move(build)](
                            const storage::Status& status) {
    Connection* connection = find_connection(connection_id);
    if (connection == nullptr) return;
    flatbuffers::FlatBufferBuilder fbb(256);
    if (status.is_ok())
      build(fbb);
    else
      frame::build_error(fbb, request_id, wire::ErrorCode::StorageFailure,
                         status.message());
    connection->send_owed(fbb);
  });
}

void Broker::write_metadata(std::function<void(storage::Batch&)> write) {
  write(committer_->batch());
  committer_->on_commit(
      [this, write = std::move(write)](const storage::Status& status) mutable {
        if (!status.is_ok()) retry_writes_.push_back(std::move(write));
      });
}

void Broker::read_back(Topic& topic, uint64_t from) {
  struct Result {
    storage::Status status = storage::Status::ok();
    std::vector<storage::StoredMessage> records;
  };
  auto result = std::make_shared<Result>();
  uint64_t id = topic.id(), committed_end = topic.committed_end();
  reader_->post(
      [this, id, from, result] {
        result->status =
            store_.read(id, from, Topic::kReadBackMessages,
                        Topic::kReadBackBytes, &result->records);
      },
      [this, id, from, committed_end, result] {
        Topic* topic = find_topic(id);
        if (topic == nullptr) return;  // deleted meanwhile
        if (!result->status.is_ok()) {
          // Not an empty stretch: that would skip what is stored there. The
          // subscriptions ask again in a second (see expire()).
          LOG_ERROR("reading topic %s at offset %llu: %s",
                    topic->name().c_str(), (unsigned long long)from,
                    result->status.message().c_str());
          topic->on_read_failed(from);
          reread_.emplace(id, now_ms() + kRereadDelayMs);
          return;
        }
        topic->on_read_back(from, committed_end, std::move(result->records));
        for (auto& s : topic->subscriptions()) schedule_dispatch(*s);
      });
}

std::vector<Topic*> Broker::topics(const std::string& name) {
  std::vector<Topic*> found;
  if (!name.empty()) {
    auto it = topics_.find(name);
    if (it != topics_.end()) found.push_back(it->second.get());
    return found;
  }
  for (auto& [topic_name, topic] : topics_) found.push_back(topic.get());
  return found;
}

void Broker::publish(uint64_t connection_id, Topic& topic,
                     const wire::Publish& publish) {
  int64_t now = unix_ms();
  uint64_t first = topic.next_offset();
  // What each message got: a new offset, or (a repeated producer message
  // id) the offset of the original.
  std::vector<wire::PublishResult> results;
  std::vector<std::string> new_ids;
  // Duplicates of messages not durable yet, by result index: they stand or
  // fall with their original's commit.
  std::vector<std::pair<size_t, std::string>> unsettled;
  if (publish.messages()) {
    results.reserve(publish.messages()->size());
    for (const wire::Message* message : *publish.messages()) {
      std::string id = message->id() ? message->id()->str() : std::string();
      uint64_t original;
      if (!id.empty() && topic.find_id(id, now, &original)) {
        if (original >= topic.committed_end())
          unsettled.emplace_back(results.size(), id);
        results.emplace_back(original, wire::ErrorCode::None, true);
        continue;
      }
      if (!id.empty() && dedupe_ids_ >= config_.max_dedupe_ids) {
        // Remembering it would take memory past the limit, and forgetting
        // older ids early would break their window: refuse this one.
        results.emplace_back(0, wire::ErrorCode::LimitExceeded, false);
        continue;
      }
      uint64_t offset = append(topic, *message, now);
      results.emplace_back(offset, wire::ErrorCode::None, false);
      if (!id.empty()) {
        int64_t expires = now + int64_t(config_.dedupe_window_ms);
        size_t before = topic.id_count();
        topic.remember_id(id, offset, expires);
        dedupe_ids_ += topic.id_count() - before;
        committer_->batch().put_dedupe({topic.id(), id, offset, expires});
        new_ids.push_back(std::move(id));
      }
    }
  }
  uint64_t end = topic.next_offset();
  bool confirm = publish.confirm();
  uint64_t request_id = publish.request_id();
  committer_->on_commit([this, topic_id = topic.id(), first, end, confirm,
                         request_id, connection_id,
                         results = std::move(results),
                         new_ids = std::move(new_ids),
                         unsettled = std::move(unsettled)](
                            const storage::Status& status) mutable {
    // The topic may have been deleted meanwhile; its messages were stored
    // all the same, until the delete.
    Topic* topic = find_topic(topic_id);
    if (topic != nullptr) {
      topic->on_committed(first, end, status.is_ok());
      for (auto& s : topic->subscriptions()) schedule_dispatch(*s);
    }
    if (!status.is_ok()) {
      // Nothing of it was stored, the ids included: a retry must append.
      for (const auto& id : new_ids) {
        if (topic == nullptr) break;
        size_t before = topic->id_count();
        topic->forget_id(id);
        dedupe_ids_ -= before - topic->id_count();
      }
      for (auto& r : results)
        if (!r.duplicate())
          r = wire::PublishResult(0, wire::ErrorCode::StorageFailure, false);
    }
    // The original's commit has returned by now (commits return in order):
    // if it failed, its id was forgotten just above or in that batch's own
    // callback, and this duplicate was not stored either.
    for (const auto& [index, id] : unsettled) {
      uint64_t original;
      if (topic != nullptr && (!topic->find_id(id, unix_ms(), &original) ||
                               original != results[index].offset()))
        results[index] =
            wire::PublishResult(0, wire::ErrorCode::StorageFailure, false);
    }
    Connection* connection = find_connection(connection_id);
    if (!confirm || connection == nullptr) return;
    flatbuffers::FlatBufferBuilder fbb(64 + 16 * results.size());
    auto vector = fbb.CreateVectorOfStructs(results);
    frame::finish(fbb, wire::Body::PublishAck,
                  wire::CreatePublishAck(fbb, request_id, vector).Union());
    connection->send_owed(fbb);
  });
}

uint64_t Broker::append(Topic& topic, const wire::Message& message,
                        int64_t timestamp_ms) {
  // One builder per record, sized to fit, so the tail can keep its buffer as
  // it is.
  flatbuffers::FlatBufferBuilder fbb(storage::record_size_hint(message));
  storage::encode_record(fbb, message, timestamp_ms);
  uint64_t offset = topic.next_offset();
  committer_->batch().put_message(topic.id(), offset, fbb.GetBufferPointer(),
                                  fbb.GetSize());
  topic.append(fbb.Release());
  changed_topics_.insert(topic.id());
  return offset;
}

bool Broker::dead_letter(Subscription& from, uint64_t offset, uint32_t attempts,
                         const wire::StoredMessage& message, const char* reason,
                         std::string* error) {
  const std::string& to = from.settings().dead_letter_topic;
  if (from.topic().settings().temporary) {
    // An inbox's replies are for one requester; nobody would read them.
    LOG_DEBUG("temporary topic %s offset %llu: dropped after %u deliveries: "
              "%s", from.topic().name().c_str(), (unsigned long long)offset,
              attempts, reason);
    return true;
  }
  Refusal refusal;
  Topic* dlq = topic(to, &refusal);
  if (dlq == nullptr) {
    *error = refusal.message;
    return false;
  }
  // The original key, headers and payload, plus where it came from and why.
  // The tern-dlq-* headers of an earlier dead-lettering are replaced, not
  // added to: a message passed along dead-letter topics stays the size it
  // was (see the Deliver frame bound in PROTOCOL.md).
  flatbuffers::FlatBufferBuilder fbb(
      1024 + (message.payload() ? message.payload()->size() : 0));
  std::vector<flatbuffers::Offset<wire::Header>> headers;
  frame::copy_headers(fbb, message.headers(), &headers, "tern-dlq-");
  auto add = [&](const char* name, const std::string& value) {
    headers.push_back(wire::CreateHeader(
        fbb, fbb.CreateString(name),
        fbb.CreateVector(reinterpret_cast<const uint8_t*>(value.data()),
                         value.size())));
  };
  add("tern-dlq-topic", from.topic().name());
  add("tern-dlq-subscription", from.name());
  add("tern-dlq-offset", std::to_string(offset));
  add("tern-dlq-attempts", std::to_string(attempts));
  add("tern-dlq-reason", reason);
  auto key = frame::copy_bytes(fbb, message.key());
  auto header_vector = fbb.CreateVector(headers);
  auto payload = frame::copy_bytes(fbb, message.payload());
  fbb.Finish(wire::CreateMessage(fbb, key, header_vector, payload));

  uint64_t at = append(*dlq, *flatbuffers::GetRoot<wire::Message>(
                                 fbb.GetBufferPointer()),
                       unix_ms());
  committer_->on_commit([this, id = dlq->id(),
                         at](const storage::Status& status) {
    if (Topic* dlq = find_topic(id)) {
      dlq->on_committed(at, at + 1, status.is_ok());
      for (auto& s : dlq->subscriptions()) schedule_dispatch(*s);
    }
  });
  LOG_INFO("topic %s offset %llu (subscription %s): dead-lettered to %s "
           "after %u deliveries: %s",
           from.topic().name().c_str(), (unsigned long long)offset,
           from.name().c_str(), to.c_str(), attempts, reason);
  return true;
}

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
  if (!valid_dead_letter_topic(topic, settings.dead_letter_topic, refusal))
    return nullptr;
  if (Subscription* existing =
          name.empty() ? nullptr : topic.find_subscription(name)) {
    // The latest Subscribe's settings apply; an ack timeout of 0 keeps the
    // one the subscription has (it is the persisted one).
    SubscriptionSettings old = existing->settings();
    if (request.ack_timeout_ms == 0)
      settings.ack_timeout_ms = old.ack_timeout_ms;
    existing->set_settings(std::move(settings));
    const SubscriptionSettings& now = existing->settings();
    if (now.ack_timeout_ms != old.ack_timeout_ms) persist_cursor(*existing);
    if (now.max_deliveries != old.max_deliveries ||
        now.dead_letter_topic != old.dead_letter_topic)
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
          LOG_ERROR("subscription %s on topic %s starts at its first "
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
  Subscription* s =
      it == topics_.end() || name.empty() ? nullptr
                                          : it->second->find_subscription(name);
  refusal->code = wire::ErrorCode::InvalidSubscription;
  if (s == nullptr) {
    refusal->message = "no durable subscription " + name + " on topic " +
                       topic_name;
    return false;
  }
  auto reply = [this, connection_id, request_id = request.request_id(), name,
                topic_name](const Refusal& refusal, uint64_t start) {
    if (refusal.code != wire::ErrorCode::None) {
      flatbuffers::FlatBufferBuilder fbb(128);
      frame::build_error(fbb, request_id, refusal.code, refusal.message);
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

void Broker::schedule_dispatch(Subscription& subscription) {
  if (subscription.has_consumers()) to_dispatch_.insert(&subscription);
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
    b.put_subscription_settings(record);
  });
}

void Broker::persist_cursor(Subscription& subscription) {
  to_persist_.insert(&subscription);
}

void Broker::on_check(uv_check_t* handle) {
  static_cast<Broker*>(handle->data)->after_io();
}

void Broker::note_cursor(Subscription& subscription) {
  if (subscription.take_cursor_changed() && subscription.durable())
    persist_cursor(subscription);
}

void Broker::after_io() {
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
    // What dispatching changed (redeliveries, dead letters, skipped
    // messages) goes into the next batch, with the dead letters it wrote.
    note_cursor(*s);
  }
  dispatching_.clear();

  for (auto& [id, connection] : connections_) connection->flush();
  if (stopping_) return;
  if (to_dispatch_.empty())
    uv_idle_stop(&idle_);
  else
    uv_idle_start(&idle_, [](uv_idle_t*) {});
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
  }
}

}  // namespace tern
