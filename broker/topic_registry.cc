// The topic registry: finding, creating (implicitly or with settings),
// altering and deleting topics, temporary topics and their owners, the
// wildcard consumers that follow new topics, and reading behind a topic's
// tail on the reader thread.
#include <algorithm>
#include <set>

#include "broker.h"
#include "connection.h"
#include "log.h"
#include "session.h"
#include "subscription.h"
#include "topic.h"
#include "wildcard.h"

namespace tern {

namespace {

// How long after a failed read-back it is tried again: soon enough that a
// passing error costs a consumer little, late enough not to spin on a
// lasting one.
constexpr uint64_t kRereadDelayMs = 1000;

// Ages are compared with Unix milliseconds: beyond this one would wrap.
constexpr uint64_t kMaxAgeMs = 100ull * 365 * 86400000;

bool valid_settings(const storage::TopicSettings& settings, Refusal* refusal) {
  if (settings.max_age_ms <= kMaxAgeMs) return true;
  refusal->code = wire::ErrorCode::InvalidTopic;
  refusal->message = "max_age_ms must be at most " + std::to_string(kMaxAgeMs) +
                     " (100 years)";
  return false;
}

bool valid_topic(const std::string& name, Refusal* refusal) {
  if (valid_topic_name(name, &refusal->message)) return true;
  refusal->code = wire::ErrorCode::InvalidTopic;
  return false;
}

}  // namespace

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

bool Broker::topics_for(const std::vector<std::string>& names,
                        std::vector<Topic*>* topics, Refusal* refusal) {
  // Every name checked before any topic is made, so a refused request
  // leaves nothing behind.
  std::set<std::string> fresh;
  for (const std::string& name : names) {
    if (topics_.count(name)) continue;
    if (is_inbox(name)) {
      refusal->code = wire::ErrorCode::UnknownTopic;
      refusal->message = "no inbox " + name + " (its requester is gone)";
      return false;
    }
    if (!valid_topic(name, refusal)) return false;
    fresh.insert(name);
  }
  if (!fresh.empty() && !within_limit(topics_.size() + fresh.size() - 1,
                                      config_.max_topics, "topics", refusal))
    return false;
  topics->clear();
  for (const std::string& name : names) {
    Topic* t = topic(name, refusal);
    if (t == nullptr) return false;
    topics->push_back(t);
  }
  return true;
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
    refusal->message =
        owned_by_other
            ? "topic " + name + " is a temporary topic of another connection"
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

Topic& Broker::add_topic(const storage::TopicRecord& record) {
  auto topic = std::make_unique<Topic>(store_, *this, memory_, record,
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
  dedupe_ids_ -= topic.dedupe_entries();
  staged_sequences_.erase(staged_sequences_.lower_bound({id, 0}),
                          staged_sequences_.lower_bound({id + 1, 0}));
  changed_topics_.erase(id);
  temporary_owner_.erase(id);
  retention_.erase(id);
  topics_by_id_.erase(id);
  std::string name = topic.name();
  topics_.erase(name);  // destroys it
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

void Broker::read_back(Topic& topic, uint64_t from) {
  struct Result {
    storage::Status status = storage::Status::ok();
    std::vector<storage::StoredMessage> records;
  };
  auto result = std::make_shared<Result>();
  uint64_t id = topic.id(), committed_end = topic.committed_end();
  reader_->post(
      [this, id, from, result] {
        result->status = store_.read(id, from, Topic::kReadBackMessages,
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

}  // namespace tern
