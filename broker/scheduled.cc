// Scheduled messages: a publish that says "not before T" is stored at once
// in a key family of its own (store.h, "W": topic, due time, ticket) and
// confirmed; when it falls due, the broker appends it to its topic and
// deletes the entry in the same batch, so a crash leaves it either still
// scheduled or appended, never both or neither. Only counts and due times
// are in memory: a backlog of millions costs disk, not RAM, and the others'
// messages never wait for it.
#include <algorithm>
#include <climits>

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "record.h"
#include "topic.h"

namespace tern {

namespace {

// The furthest ahead a message may be scheduled.
constexpr int64_t kMaxScheduleMs = int64_t(366) * 24 * 3600 * 1000;
// One move reads at most this much; more due moves again at once.
constexpr size_t kMoveMessages = 512;
constexpr size_t kMoveBytes = 1u << 20;
// A move that could not read or commit is tried again this much later.
constexpr int64_t kMoveRetryMs = 1000;
// The timer wakes at least this often, so that a wall clock set forward is
// noticed: due times are Unix time, the timer runs on the loop's clock.
constexpr int64_t kMaxTimerMs = 1000;

}  // namespace

int64_t Broker::due_time(const wire::Message& message, int64_t now) {
  int64_t due = std::max(message.deliver_at_ms(),
                         message.delay_ms() ? now + message.delay_ms() : 0);
  if (due <= now) return 0;
  return due - now > kMaxScheduleMs ? -1 : due;
}

uint64_t Broker::schedule(Topic& topic, const wire::Message& message,
                          int64_t due, int64_t now) {
  flatbuffers::FlatBufferBuilder fbb(storage::record_size_hint(message));
  storage::encode_record(fbb, message, now);
  Topic::Schedule& s = topic.schedule();
  uint64_t ticket = s.next_ticket++;
  ++s.count;
  committer_->batch().put_scheduled(topic.id(), due, ticket,
                                    fbb.GetBufferPointer(), fbb.GetSize());
  changed_topics_.insert(topic.id());  // its count and next ticket
  return kTicketBit | ticket;
}

void Broker::note_due(Topic& topic, int64_t due) {
  Topic::Schedule& s = topic.schedule();
  // Only a wall clock set back schedules before what was moved already.
  if (due < s.from_due_ms) s.from_due_ms = s.from_ticket = 0;
  if (due >= s.next_due_ms) return;
  if (s.moving) {
    s.next_due_ms = due;  // on_moved() takes it into account
    return;
  }
  set_next_due(topic, due);
}

bool Broker::load_schedules() {
  for (auto& [name, topic] : topics_) {
    std::vector<storage::ScheduledMessage> none;
    int64_t first = INT64_MAX;
    storage::Status status = store_.read_scheduled(topic->id(), 0, 0, INT64_MIN,
                                                   0, 0, &none, &first);
    if (!status.is_ok()) {
      LOG_ERROR("cannot load scheduled messages: %s", status.message().c_str());
      return false;
    }
    topic->schedule().next_due_ms = first;
    if (first != INT64_MAX) due_topics_.insert({first, topic->id()});
  }
  return true;
}

void Broker::set_next_due(Topic& topic, int64_t due) {
  // Called once per commit that scheduled something earlier than known, or
  // per move: re-arming the timer each time costs less than telling
  // whether the earliest entry changed.
  Topic::Schedule& s = topic.schedule();
  due_topics_.erase({s.next_due_ms, topic.id()});
  s.next_due_ms = due;
  if (due != INT64_MAX) due_topics_.insert({due, topic.id()});
  arm_schedule_timer();
}

void Broker::arm_schedule_timer() {
  if (stopping_) return;
  if (due_topics_.empty()) {
    uv_timer_stop(&schedule_timer_);
    return;
  }
  int64_t wait = due_topics_.begin()->first - unix_ms();
  uv_timer_start(&schedule_timer_, on_schedule_timer,
                 uint64_t(std::clamp<int64_t>(wait, 0, kMaxTimerMs)), 0);
}

void Broker::on_schedule_timer(uv_timer_t* handle) {
  static_cast<Broker*>(handle->data)->move_due();
}

void Broker::move_due() {
  int64_t now = unix_ms();
  while (!due_topics_.empty() && due_topics_.begin()->first <= now) {
    uint64_t id = due_topics_.begin()->second;
    due_topics_.erase(due_topics_.begin());
    if (Topic* topic = find_topic(id)) {
      topic->schedule().next_due_ms = INT64_MAX;
      move_due(*topic, now);
    }
  }
  arm_schedule_timer();
}

void Broker::move_due(Topic& topic, int64_t now) {
  // Read on the loop thread: a move reads at most kMoveBytes, and only what
  // is due, and it must happen before anything else appends.
  Topic::Schedule& s = topic.schedule();
  std::vector<storage::ScheduledMessage> due;
  int64_t next = INT64_MAX;
  storage::Status status =
      store_.read_scheduled(topic.id(), s.from_due_ms, s.from_ticket, now,
                            kMoveMessages, kMoveBytes, &due, &next);
  if (!status.is_ok()) {
    LOG_ERROR("topic %s: scheduled messages not read (again in %lld ms): %s",
              topic.name().c_str(), (long long)kMoveRetryMs,
              status.message().c_str());
    set_next_due(topic, now + kMoveRetryMs);
    return;
  }
  if (due.empty()) {
    set_next_due(topic, next);
    return;
  }
  uint64_t first = topic.next_offset();
  for (const storage::ScheduledMessage& m : due) {
    committer_->batch().delete_scheduled(topic.id(), m.due_ms, m.ticket);
    const wire::StoredMessage* record = storage::decode_record(m.record);
    if (record == nullptr) {
      LOG_ERROR("topic %s: scheduled message %llu is damaged; dropped",
                topic.name().c_str(), (unsigned long long)m.ticket);
      continue;
    }
    flatbuffers::FlatBufferBuilder fbb(m.record.size() + 64);
    storage::restamp_record(fbb, *record, now);
    append_record(topic, fbb);
  }
  s.moving = due.size();
  changed_topics_.insert(topic.id());
  committer_->on_commit(
      [this, id = topic.id(), first, end = topic.next_offset(),
       last_due = due.back().due_ms, last_ticket = due.back().ticket,
       moved = due.size(), next](const storage::Status& status) {
        if (Topic* topic = find_topic(id)) {
          topic->on_committed(first, end, status.is_ok());
          for (auto& s : topic->subscriptions()) schedule_dispatch(*s);
        }
        on_moved(id, last_due, last_ticket, moved, next, status);
      });
}

void Broker::on_moved(uint64_t topic_id, int64_t last_due, uint64_t last_ticket,
                      uint64_t moved, int64_t next_due,
                      const storage::Status& status) {
  Topic* topic = find_topic(topic_id);
  if (topic == nullptr) return;
  Topic::Schedule& s = topic->schedule();
  s.moving = 0;
  int64_t due = std::min(s.next_due_ms, next_due);
  if (status.is_ok()) {
    s.count -= moved;
    // Past the entries just moved, unless one was scheduled before them
    // meanwhile (see note_due()).
    bool behind = s.next_due_ms < last_due;
    s.from_due_ms = behind ? 0 : last_due;
    s.from_ticket = behind ? 0 : last_ticket + 1;
  } else {
    // Still stored as scheduled (the state is written again to say so),
    // and tried again once the store may take writes again, not at once
    // (more may be due already: that would spin on a failing store).
    changed_topics_.insert(topic_id);
    due = unix_ms() + kMoveRetryMs;
  }
  s.next_due_ms = INT64_MAX;  // not in due_topics_ while moving
  set_next_due(*topic, due);
}

}  // namespace tern
