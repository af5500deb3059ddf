#include "topic.h"

#include <algorithm>

#include "log.h"
#include "record.h"

namespace tern {

namespace {
// Read-back stretches kept per topic (each up to kReadBackBytes).
constexpr size_t kMaxStretches = 8;
}  // namespace

Topic::Topic(storage::Store& store, ReadBackSource& reader,
             MemoryBudget& memory, const storage::TopicRecord& record,
             size_t tail_limit_bytes)
    : id_(record.id),
      name_(record.name),
      settings_(record.settings),
      messages_(record.state.messages),
      bytes_(record.state.bytes),
      first_offset_(record.state.first_offset),
      committed_end_(record.state.next_offset),
      next_offset_(record.state.next_offset),
      tail_limit_bytes_(tail_limit_bytes),
      store_(store),
      reader_(reader),
      memory_(memory),
      memory_place_(memory.enter(*this)) {
  schedule_.count = record.state.scheduled;
  schedule_.next_ticket = record.state.next_ticket;
}

Topic::~Topic() { memory_.leave(memory_place_, memory_bytes()); }

uint64_t Topic::append(flatbuffers::DetachedBuffer record) {
  ++messages_;
  bytes_ += record.size();
  ++appended_messages_;
  appended_bytes_ += record.size();
  tail_bytes_ += record.size();
  memory_.hold(record.size());
  memory_.touch(memory_place_);
  tail_.push_back({next_offset_, std::move(record)});
  return next_offset_++;
}

void Topic::on_committed(uint64_t first, uint64_t end, bool ok) {
  committed_end_ = std::max(committed_end_, end);
  if (!ok) {
    for (auto& entry : tail_) {
      if (entry.offset >= first && entry.offset < end) {
        --messages_;
        bytes_ -= entry.record.size();
        tail_bytes_ -= entry.record.size();
        memory_.release(entry.record.size());
        entry.record = flatbuffers::DetachedBuffer();
      }
    }
  }
  trim_tail();
}

void Topic::remove_before(uint64_t first, uint64_t messages, uint64_t bytes) {
  first_offset_ = std::max(first_offset_, first);
  messages_ -= std::min(messages_, messages);
  bytes_ -= std::min(bytes_, bytes);
  removed_messages_ += messages;
  removed_bytes_ += bytes;
  while (!tail_.empty() && tail_.front().offset < first_offset_) pop_tail();
  for (auto& s : subscriptions_) s->skip_before(first_offset_);
}

void Topic::trim_tail() {
  while (!tail_.empty() && tail_bytes_ > tail_limit_bytes_ &&
         tail_.front().offset < committed_end_)
    pop_tail();
}

void Topic::pop_tail() {
  size_t size = tail_.front().record.size();
  tail_bytes_ -= size;
  memory_.release(size);
  tail_.pop_front();
}

void Topic::pop_stretch() {
  auto it = read_back_.find(read_back_order_.front());
  size_t size = 0;
  for (const auto& r : it->second.records) size += r.record.size();
  read_back_bytes_ -= size;
  memory_.release(size);
  read_back_.erase(it);
  read_back_order_.pop_front();
}

size_t Topic::give_back(size_t wanted) {
  size_t before = memory_bytes();
  // Stretches first: they are the store's records already once more read.
  while (!read_back_order_.empty() && before - memory_bytes() < wanted)
    pop_stretch();
  // Records not yet durable must stay: nothing else holds them for delivery.
  while (!tail_.empty() && tail_.front().offset < committed_end_ &&
         before - memory_bytes() < wanted)
    pop_tail();
  return before - memory_bytes();
}

const wire::StoredMessage* Topic::record_at_or_after(uint64_t* offset,
                                                     bool* reading) {
  *reading = false;
  memory_.touch(memory_place_);
  for (;;) {
    // Below first_offset_ is removed, even while the range delete is still
    // on its way to the store.
    *offset = std::max(*offset, first_offset_);
    uint64_t tail_start = tail_.empty() ? next_offset_ : tail_.front().offset;
    if (*offset >= tail_start) {
      for (uint64_t o = *offset; o < committed_end_; ++o) {
        const TailEntry& entry = tail_[o - tail_start];
        if (entry.record.size() > 0) {
          *offset = o;
          // Built by this process from a verified frame: no need to verify.
          return flatbuffers::GetRoot<wire::StoredMessage>(
              entry.record.data());
        }
      }
      return nullptr;
    }
    // Behind the tail: from a stretch read back, if one covers the offset.
    auto it = stretch_covering(*offset);
    if (it == read_back_.end()) {
      ask_for(*offset);
      *reading = true;
      return nullptr;
    }
    // Read ahead: the next stretch is on its way while this one is served.
    uint64_t next = it->second.end;
    if (next < tail_start && stretch_covering(next) == read_back_.end())
      ask_for(next);
    const std::vector<storage::StoredMessage>& records = it->second.records;
    auto found = std::lower_bound(
        records.begin(), records.end(), *offset,
        [](const storage::StoredMessage& m, uint64_t o) {
          return m.offset < o;
        });
    for (; found != records.end(); ++found) {
      if (found->offset >= committed_end_) return nullptr;
      *offset = found->offset;
      if (const auto* message = storage::decode_record(found->record))
        return message;
      LOG_ERROR("topic %s offset %llu: stored record is damaged; skipped",
                name_.c_str(), (unsigned long long)found->offset);
    }
    *offset = it->second.end;  // nothing more in this stretch: go on after it
  }
}

std::map<uint64_t, Topic::Stretch>::const_iterator Topic::stretch_covering(
    uint64_t offset) const {
  auto it = read_back_.upper_bound(offset);
  if (it == read_back_.begin()) return read_back_.end();
  --it;
  return offset < it->second.end ? it : read_back_.end();
}

void Topic::ask_for(uint64_t from) {
  // A read from a little before may bring it; else ask for one from here.
  auto asked = reading_.upper_bound(from);
  if (asked != reading_.begin() &&
      from - *std::prev(asked) < kReadBackMessages)
    return;
  reading_.insert(from);
  reader_.read_back(*this, from);
}

void Topic::on_read_back(uint64_t from, uint64_t committed_end,
                         std::vector<storage::StoredMessage> records) {
  reading_.erase(from);
  size_t bytes = 0;
  for (const auto& r : records) bytes += r.record.size();
  // A short read saw everything stored from `from` on, which includes all
  // that was committed when it was asked for.
  bool complete =
      records.size() < kReadBackMessages && bytes < kReadBackBytes;
  uint64_t end = complete ? committed_end
                          : records.back().offset + 1;
  if (end <= from) return;
  // Read again (e.g. after the memory budget took it): the old one goes.
  if (read_back_.count(from) != 0) {
    read_back_order_.erase(
        std::find(read_back_order_.begin(), read_back_order_.end(), from));
    read_back_order_.push_front(from);
    pop_stretch();
  }
  read_back_order_.push_back(from);
  read_back_[from] = {end, std::move(records)};
  read_back_bytes_ += bytes;
  memory_.hold(bytes);
  memory_.touch(memory_place_);
  while (read_back_order_.size() > kMaxStretches) pop_stretch();
}

bool Topic::find_id(const std::string& id, int64_t now_ms,
                    uint64_t* offset) const {
  auto it = ids_.find(id);
  if (it == ids_.end() || it->second.expires_ms <= now_ms) return false;
  *offset = it->second.offset;
  return true;
}

void Topic::remember_id(const std::string& id, uint64_t offset,
                        int64_t expires_ms) {
  ids_[id] = {offset, expires_ms};
  id_expiry_.emplace_back(expires_ms, id);
}

void Topic::forget_id(const std::string& id) { ids_.erase(id); }

std::vector<std::string> Topic::expire_ids(int64_t now_ms) {
  std::vector<std::string> expired;
  while (!id_expiry_.empty() && id_expiry_.front().first <= now_ms) {
    auto& [expires_ms, id] = id_expiry_.front();
    auto it = ids_.find(id);
    if (it != ids_.end() && it->second.expires_ms == expires_ms) {
      ids_.erase(it);
      expired.push_back(std::move(id));
    }
    id_expiry_.pop_front();
  }
  return expired;
}

uint64_t Topic::resolve_start(wire::StartPosition position,
                              uint64_t offset) const {
  switch (position) {
    case wire::StartPosition::Latest:
      return committed_end_;
    case wire::StartPosition::Earliest:
      return first_offset_;
    default:
      return std::clamp(offset, first_offset_, committed_end_);
  }
}

Subscription* Topic::find_subscription(const std::string& name) {
  for (auto& s : subscriptions_)
    if (s->durable() && s->name() == name) return s.get();
  return nullptr;
}

Subscription& Topic::add_subscription(std::unique_ptr<Subscription> s) {
  subscriptions_.push_back(std::move(s));
  return *subscriptions_.back();
}

void Topic::remove_subscription(Subscription& subscription) {
  subscriptions_.erase(
      std::remove_if(subscriptions_.begin(), subscriptions_.end(),
                     [&](const auto& s) { return s.get() == &subscription; }),
      subscriptions_.end());
}

}  // namespace tern
