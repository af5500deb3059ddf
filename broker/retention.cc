#include "retention.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "record.h"
#include "topic.h"

namespace tern {

std::optional<RetentionJob> plan_retention(const Topic& topic, int64_t now_ms) {
  const storage::TopicSettings& settings = topic.settings();
  RetentionJob job;
  job.topic_id = topic.id();
  job.first = topic.first_offset();
  job.end = topic.committed_end();
  job.remove_below = job.first;
  if (settings.max_messages > 0 && job.end > settings.max_messages)
    job.remove_below =
        std::max(job.remove_below, job.end - settings.max_messages);
  if (settings.work_queue) {
    // Only durable subscriptions hold a work queue's messages; without any,
    // nothing is done with them yet and they stay.
    uint64_t floor = UINT64_MAX;
    for (const auto& s : topic.subscriptions())
      if (s->durable()) floor = std::min(floor, s->acks().floor());
    if (floor != UINT64_MAX)
      job.remove_below = std::max(job.remove_below, floor);
  }
  job.remove_below = std::min(job.remove_below, job.end);
  if (settings.max_age_ms > 0)
    job.older_than_ms = now_ms - int64_t(settings.max_age_ms);
  job.bytes = topic.state().bytes;
  job.max_bytes = settings.max_bytes;

  bool over_bytes = job.max_bytes > 0 && job.bytes > job.max_bytes;
  bool may_be_old = job.older_than_ms != 0 && job.first < job.end;
  if (job.remove_below <= job.first && !over_bytes && !may_be_old)
    return std::nullopt;
  return job;
}

RetentionCut find_cut(storage::Store& store, const RetentionJob& job) {
  RetentionCut cut;
  cut.first = job.first;
  // RocksDB's value bytes have no alignment; a FlatBuffer is read from an
  // 8-byte aligned copy.
  std::vector<uint64_t> aligned;
  // Messages go in offset order while any limit says so; the first one all
  // limits keep ends the cut (appends are in time order, so nothing after
  // it is older).
  cut.status = store.scan(
      job.topic_id, job.first,
      [&](uint64_t offset, const char* record, size_t size) {
        if (offset >= job.end) return false;
        bool remove =
            offset < job.remove_below ||
            (job.max_bytes > 0 && job.bytes - cut.bytes > job.max_bytes);
        if (!remove && job.older_than_ms != 0) {
          aligned.resize(size / 8 + 1);
          std::memcpy(aligned.data(), record, size);
          const auto* message = storage::decode_record(
              reinterpret_cast<const uint8_t*>(aligned.data()), size);
          remove =
              message != nullptr && message->timestamp_ms() < job.older_than_ms;
        }
        if (!remove) return false;
        cut.first = offset + 1;
        ++cut.messages;
        cut.bytes += size;
        return true;
      });
  // Offsets that hold nothing (failed commits) below the limit go too.
  cut.first = std::max(cut.first, job.remove_below);
  return cut;
}

// --- the broker's rounds (loop thread)
// ----------------------------------------

namespace {
// Range deletes give space back only once compacted. A topic is compacted
// once this much was removed from it, or once it had no cut for
// kCompactIdleRounds rounds, whichever comes first.
constexpr uint64_t kCompactBytes = 64ull << 20;
constexpr uint64_t kCompactIdleRounds = 10;
}  // namespace

void Broker::on_retention_timer(uv_timer_t* handle) {
  static_cast<Broker*>(handle->data)->enforce_retention();
}

void Broker::enforce_retention() {
  uint64_t now = uv_now(&loop_);
  int64_t wall_now = unix_ms();
  for (auto& [name, topic] : topics_) {
    if (!topic->settings().has_retention()) continue;
    uint64_t id = topic->id();
    RetentionProgress& progress = retention_[id];
    if (progress.busy) continue;
    if (progress.uncompacted_end > 0 &&
        (progress.uncompacted_bytes >= kCompactBytes ||
         now - progress.last_cut_ms >=
             kCompactIdleRounds * config_.retention_interval_ms)) {
      progress.busy = true;
      worker_->post(
          [this, id, end = progress.uncompacted_end] {
            storage::Status status = store_.compact(id, end);
            if (!status.is_ok())
              LOG_WARN("retention: %s", status.message().c_str());
          },
          [this, id] {
            if (auto it = retention_.find(id); it != retention_.end())
              it->second.busy = false;
          });
      progress.uncompacted_end = progress.uncompacted_bytes = 0;
      continue;
    }
    std::optional<RetentionJob> job = plan_retention(*topic, wall_now);
    if (!job) continue;
    progress.busy = true;
    auto cut = std::make_shared<RetentionCut>();
    worker_->post([this, job = *job, cut] { *cut = find_cut(store_, job); },
                  [this, job = *job, cut] { apply_retention(job, *cut); });
  }
}

void Broker::apply_retention(const RetentionJob& job, const RetentionCut& cut) {
  auto progress = retention_.find(job.topic_id);
  Topic* topic = find_topic(job.topic_id);
  if (progress == retention_.end() || topic == nullptr) return;  // deleted
  progress->second.busy = false;
  if (!cut.status.is_ok()) {
    LOG_ERROR("retention of topic %s: %s", topic->name().c_str(),
              cut.status.message().c_str());
    return;
  }
  if (cut.first <= job.first || topic->first_offset() != job.first) return;
  write_metadata([id = job.topic_id, from = job.first, to = cut.first](
                     storage::Batch& b) { b.delete_messages(id, from, to); });
  topic->remove_before(cut.first, cut.messages, cut.bytes);
  changed_topics_.insert(job.topic_id);
  // Deliveries of what was removed are forgotten: that frees credit, and
  // nothing else may come along to use it.
  for (auto& s : topic->subscriptions()) {
    note_cursor(*s);
    schedule_dispatch(*s);
  }
  progress->second.uncompacted_end = cut.first;
  progress->second.uncompacted_bytes += cut.bytes;
  progress->second.last_cut_ms = uv_now(&loop_);
  log_event(LogLevel::kInfo, "retention_removed",
            {{"topic", topic->name()},
             {"first", std::to_string(job.first)},
             {"last", std::to_string(cut.first - 1)},
             {"messages", std::to_string(cut.messages)},
             {"bytes", std::to_string(cut.bytes)}},
            "retention: topic %s offsets %llu..%llu removed (%llu messages, "
            "%llu bytes)",
            topic->name().c_str(), (unsigned long long)job.first,
            (unsigned long long)cut.first - 1, (unsigned long long)cut.messages,
            (unsigned long long)cut.bytes);
}

}  // namespace tern
