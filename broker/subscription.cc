#include "subscription.h"

#include <algorithm>
#include <string_view>

#include "connection.h"
#include "consumer.h"
#include "log.h"
#include "topic.h"
#include "traceparent.h"

namespace tern {

namespace {
// A Deliver frame is sent once it holds this much, so one frame never grows
// without bound however much credit a consumer gives.
constexpr size_t kMaxDeliverFrameBytes = 1u << 20;
}  // namespace

namespace {
// Messages whose dead-lettering failed (e.g. the dead-letter topic cannot be
// created) are tried again this much later, not in a tight loop.
constexpr uint64_t kDeadLetterRetryMs = 1000;
}  // namespace

Subscription::Subscription(Topic& topic, std::string name,
                           SubscriptionSettings settings, AckSet acks,
                           uint64_t start, DeadLetters& dead_letters)
    : topic_(topic),
      name_(std::move(name)),
      settings_(std::move(settings)),
      dead_letters_(dead_letters),
      acks_(std::move(acks)),
      next_offset_(std::max(start, acks_.floor())) {}

void Subscription::add_consumer(Consumer& consumer) {
  consumers_.push_back(&consumer);
}

void Subscription::remove_consumer(Consumer& consumer) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.consumer == &consumer) {
      redeliver_[it->first] = it->second.attempt;
      cursor_changed_ = true;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  consumer.unacked = 0;
  consumers_.erase(std::find(consumers_.begin(), consumers_.end(), &consumer));
  next_consumer_ = 0;
}

void Subscription::ack(Consumer& consumer, uint64_t first, uint64_t last) {
  // Settles what this consumer holds, and what was taken back from it but not
  // yet handed out again. A message now held by another consumer stays
  // theirs: an ack range must never settle work someone else is doing.
  ack_held(consumer, first, last, nullptr);
  for (auto it = redeliver_.lower_bound(first);
       it != redeliver_.end() && it->first <= last;) {
    mark_acked(it->first, it->first);
    ++counters_.acked;
    give_up_.erase(it->first);
    it = redeliver_.erase(it);
  }
}

void Subscription::ack_held(Consumer& consumer, uint64_t first, uint64_t last,
                            std::vector<std::pair<uint64_t, uint32_t>>* acked) {
  for (uint64_t offset : held_by(consumer, first, last)) {
    auto it = pending_.find(offset);
    if (acked) acked->emplace_back(offset, it->second.attempt);
    pending_.erase(it);
    --consumer.unacked;
    mark_acked(offset, offset);
    ++counters_.acked;
  }
}

void Subscription::take_back(uint64_t offset, uint32_t attempts,
                             const char* give_up_reason) {
  // Retention may have removed it meanwhile: then it stays done.
  if (offset < topic_.first_offset() || !acks_.remove(offset)) return;
  redeliver_[offset] = attempts;
  if (give_up_reason == nullptr) {
    --counters_.acked;
  } else {
    --counters_.dead_lettered;
    give_up_[offset] = give_up_reason;
  }
  cursor_changed_ = true;
}

uint64_t Subscription::lag() const {
  uint64_t end = topic_.committed_end();
  return end > acks_.floor() ? end - acks_.floor() - acks_.acked_above_floor()
                             : 0;
}

void Subscription::mark_acked(uint64_t first, uint64_t last) {
  if (acks_.add(first, last)) cursor_changed_ = true;
}

std::vector<uint64_t> Subscription::held_by(const Consumer& consumer,
                                            uint64_t first,
                                            uint64_t last) const {
  std::vector<uint64_t> offsets;
  if (last < first) return offsets;
  auto mine = [&](uint64_t offset) {
    auto it = pending_.find(offset);
    return it != pending_.end() && it->second.consumer == &consumer;
  };
  if (last - first < pending_.size()) {
    for (uint64_t o = first;; ++o) {
      if (mine(o)) offsets.push_back(o);
      if (o == last) break;
    }
  } else {
    for (const auto& [offset, pending] : pending_)
      if (offset >= first && offset <= last && pending.consumer == &consumer)
        offsets.push_back(offset);
    std::sort(offsets.begin(), offsets.end());
  }
  return offsets;
}

void Subscription::nack(Consumer& consumer, uint64_t first, uint64_t last,
                        uint32_t delay_ms, bool dead_letter,
                        uint64_t now_ms) {
  for (uint64_t offset : held_by(consumer, first, last)) {
    uint32_t attempts = pending_[offset].attempt;
    pending_.erase(offset);
    --consumer.unacked;
    ++counters_.nacked;
    if (dead_letter) {
      // Dead-lettered on its way out again, where its record is at hand.
      give_up_[offset] = "rejected";
      redeliver_[offset] = attempts;
    } else {
      retry(offset, attempts, delay_ms ? delay_ms : backoff_ms(attempts),
            now_ms);
    }
    cursor_changed_ = true;
  }
}

uint32_t Subscription::backoff_ms(uint32_t attempt) const {
  const std::vector<uint32_t>& delays = settings_.retry_delays_ms;
  return delays[std::min<size_t>(attempt == 0 ? 0 : attempt - 1,
                                 delays.size() - 1)];
}

void Subscription::retry(uint64_t offset, uint32_t attempts, uint32_t delay_ms,
                         uint64_t now_ms) {
  // One that may not be delivered again is dead-lettered at once, not
  // after a wait that would change nothing.
  if (settings_.max_deliveries != 0 && attempts >= settings_.max_deliveries)
    delay_ms = 0;
  if (delay_ms == 0)
    redeliver_[offset] = attempts;
  else
    delayed_.emplace(now_ms + delay_ms, std::make_pair(offset, attempts));
}

void Subscription::give_up(uint64_t offset, uint32_t attempts,
                           const wire::StoredMessage& message,
                           const char* reason, uint64_t now_ms) {
  std::string error;
  if (dead_letters_.dead_letter(*this, offset, attempts, message, reason,
                                &error)) {
    mark_acked(offset, offset);
    ++counters_.dead_lettered;
    if (!dead_letter_error_.empty() && blocked_.empty()) {
      LOG_INFO(
          "subscription %s on topic %s: dead-lettering to %s works "
          "again",
          name_.c_str(), topic_.name().c_str(),
          settings_.dead_letter_topic.c_str());
      dead_letter_error_.clear();
    }
    return;
  }
  // Held back, never delivered again: it was given up on. Logged when the
  // reason changes, not once a second per message.
  if (error != dead_letter_error_)
    LOG_ERROR(
        "subscription %s on topic %s: cannot dead-letter to %s, "
        "holding such messages back until it can: %s",
        name_.c_str(), topic_.name().c_str(),
        settings_.dead_letter_topic.c_str(), error.c_str());
  dead_letter_error_ = std::move(error);
  if (blocked_.empty()) blocked_retry_ms_ = now_ms + kDeadLetterRetryMs;
  blocked_[offset] = {attempts, reason};
  cursor_changed_ = true;
}

void Subscription::log_message(LogLevel level, const char* event,
                               uint64_t offset,
                               const wire::StoredMessage& message,
                               const std::string& what) const {
  log_event(level, event,
            {{"topic", topic_.name()},
             {"subscription", name_},
             {"offset", std::to_string(offset)},
             {"trace_id", trace::trace_id_of(message.headers())}},
            "subscription %s on topic %s: offset %llu %s", name_.c_str(),
            topic_.name().c_str(), (unsigned long long)offset, what.c_str());
}

void Subscription::expire_message(uint64_t offset, uint32_t attempts,
                                  const wire::StoredMessage& message,
                                  uint64_t now_ms) {
  ++counters_.expired;
  if (log_enabled(LogLevel::kDebug))
    log_message(LogLevel::kDebug, "expired", offset, message,
                "expired before it was handed out");
  if (topic_.settings().dead_letter_expired)
    give_up(offset, attempts, message, "expired", now_ms);
  else
    mark_acked(offset, offset);
}

Consumer* Subscription::next_consumer_with_credit() {
  for (size_t i = 0; i < consumers_.size(); ++i) {
    Consumer* c = consumers_[(next_consumer_ + i) % consumers_.size()];
    if (c->credit() > 0 && !c->connection.congested(c->outgoing.bytes())) {
      next_consumer_ = (next_consumer_ + i + 1) % consumers_.size();
      return c;
    }
  }
  return nullptr;
}

// Finds the next message to hand out: a redelivery if one waits, else the
// next committed offset nobody has acked.
bool Subscription::next_message(uint64_t now_ms, int64_t wall_ms,
                                uint64_t* offset, uint32_t* attempt,
                                const wire::StoredMessage** record) {
  auto expired = [wall_ms](const wire::StoredMessage* m) {
    return m->expires_ms() != 0 && m->expires_ms() <= wall_ms;
  };
  bool reading;
  while (!redeliver_.empty()) {
    auto it = redeliver_.begin();
    uint64_t wanted = it->first, o = wanted;
    *attempt = it->second + 1;
    if (acks_.contains(wanted)) {  // acked while it waited
      redeliver_.erase(it);
      give_up_.erase(wanted);
      continue;
    }
    *record = topic_.record_at_or_after(&o, &reading);
    if (reading) return false;  // dispatched again once the store read is back
    redeliver_.erase(it);
    auto why = give_up_.find(wanted);
    const char* give_up_reason = why == give_up_.end() ? nullptr : why->second;
    if (why != give_up_.end()) give_up_.erase(why);
    if (*record == nullptr || o != wanted) {  // no longer stored
      mark_acked(wanted, wanted);
      continue;
    }
    if (give_up_reason != nullptr) {
      give_up(wanted, *attempt - 1, **record, give_up_reason, now_ms);
      continue;
    }
    if (expired(*record)) {
      expire_message(wanted, *attempt - 1, **record, now_ms);
      continue;
    }
    if (settings_.max_deliveries > 0 &&
        *attempt > settings_.max_deliveries) {
      give_up(wanted, *attempt - 1, **record, "max deliveries reached",
              now_ms);
      continue;
    }
    *offset = o;
    return true;
  }
  while (next_offset_ < topic_.committed_end()) {
    if (acks_.contains(next_offset_)) {
      ++next_offset_;
      continue;
    }
    uint64_t o = next_offset_;
    *record = topic_.record_at_or_after(&o, &reading);
    if (*record == nullptr) return false;  // caught up, or reading
    // Offsets skipped were never stored (a failed commit): count them done.
    if (o > next_offset_) mark_acked(next_offset_, o - 1);
    next_offset_ = o + 1;
    // Held back: waiting elsewhere (a delayed nack, a dead letter) since
    // before a restart; handed out from there, not by this pass.
    if (acks_.contains(o) || held_back_.erase(o)) continue;
    if (expired(*record)) {
      auto prior = prior_attempts_.find(o);
      expire_message(o, prior == prior_attempts_.end() ? 0 : prior->second,
                     **record, now_ms);
      continue;
    }
    *offset = o;
    *attempt = 1;
    // Delivered before a restart: its count goes on.
    if (auto prior = prior_attempts_.find(o); prior != prior_attempts_.end()) {
      *attempt = prior->second + 1;
      prior_attempts_.erase(prior);
      if (settings_.max_deliveries > 0 &&
          *attempt > settings_.max_deliveries) {
        give_up(o, *attempt - 1, **record, "max deliveries reached", now_ms);
        continue;
      }
    }
    return true;
  }
  return false;
}

void Subscription::dispatch(uint64_t now_ms, int64_t wall_ms) {
  if (consumers_.empty() || held_for_ != 0) return;
  touched_.clear();
  while (Consumer* consumer = next_consumer_with_credit()) {
    uint64_t offset;
    uint32_t attempt;
    const wire::StoredMessage* message;
    if (!next_message(now_ms, wall_ms, &offset, &attempt, &message)) break;
    // Several messages share a frame only while it stays under the limit; a
    // message alone always fits (a Publish leaves room: see PROTOCOL.md).
    size_t limit = std::min<size_t>(
        kMaxDeliverFrameBytes,
        consumer->connection.max_frame_bytes() - frame::kDeliverReserveBytes);
    if (consumer->outgoing.count() > 0 &&
        consumer->outgoing.bytes() + DeliverFrame::size_bound(*message) > limit)
      flush(*consumer);
    consumer->outgoing.add(offset, attempt, *message);
    if (consumer->grants_replies)
      consumer->connection.session().grant_reply(*message);
    pending_[offset] = {consumer, attempt};
    ++counters_.delivered;
    if (attempt > 1) {
      ++counters_.redelivered;
      cursor_changed_ = true;
      if (log_enabled(LogLevel::kDebug))
        log_message(LogLevel::kDebug, "redelivered", offset, *message,
                    "delivered again, attempt " + std::to_string(attempt));
    }
    deadlines_.push_back({now_ms + settings_.ack_timeout_ms, offset, attempt});
    ++consumer->unacked;
    if (consumer->outgoing.count() == 1) touched_.push_back(consumer);
    if (consumer->outgoing.bytes() >= limit) flush(*consumer);
  }
  for (Consumer* consumer : touched_) flush(*consumer);
}

void Subscription::flush(Consumer& consumer) {
  if (consumer.outgoing.count() == 0) return;
  consumer.connection.send(
      consumer.outgoing.finish(consumer.id, topic_.name(), name_));
}

std::vector<storage::Redelivery> Subscription::redeliveries(
    uint64_t now_ms, int64_t wall_ms) const {
  std::map<uint64_t, storage::Redelivery> all;  // by offset, for order
  auto add = [&](uint64_t offset, uint32_t attempts, int64_t due_ms,
                 bool rejected = false) {
    if (!acks_.contains(offset))
      all[offset] = {offset, attempts, due_ms, rejected};
  };
  auto rejected = [](const char* why) {
    return std::string_view(why) == "rejected";
  };
  for (const auto& [offset, attempts] : prior_attempts_) add(offset, attempts, 0);
  for (const auto& [offset, pending] : pending_)
    if (pending.attempt > 1) add(offset, pending.attempt, 0);
  // A message given up on for its attempts or its age is given up on again
  // after a restart by those checks; a rejected one must say so.
  for (const auto& [offset, attempts] : redeliver_) {
    auto why = give_up_.find(offset);
    add(offset, attempts, 0, why != give_up_.end() && rejected(why->second));
  }
  for (const auto& [offset, blocked] : blocked_)
    add(offset, blocked.first, 0, rejected(blocked.second));
  // Due times are stored as Unix time (+1 ms, since 0 means "not delayed").
  for (const auto& [due, entry] : delayed_)
    add(entry.first, entry.second,
        wall_ms + int64_t(due > now_ms ? due - now_ms : 0) + 1);
  std::vector<storage::Redelivery> out;
  out.reserve(all.size());
  for (auto& [offset, r] : all) out.push_back(r);
  return out;
}

void Subscription::restore(const std::vector<storage::Redelivery>& saved,
                           uint64_t skipped, uint64_t now_ms,
                           int64_t wall_ms) {
  skipped_ = skipped;
  for (const storage::Redelivery& r : saved) {
    if (acks_.contains(r.offset)) continue;
    if (r.rejected) {
      redeliver_[r.offset] = r.attempts;
      give_up_[r.offset] = "rejected";
      held_back_.insert(r.offset);
    } else if (r.due_ms == 0) {
      prior_attempts_[r.offset] = r.attempts;
    } else {
      uint64_t wait = r.due_ms > wall_ms ? uint64_t(r.due_ms - wall_ms) : 0;
      delayed_.emplace(now_ms + wait, std::make_pair(r.offset, r.attempts));
      held_back_.insert(r.offset);
    }
  }
}

void Subscription::reset(uint64_t start) {
  acks_ = AckSet();
  acks_.raise_floor(start);
  next_offset_ = start;
  pending_.clear();
  redeliver_.clear();
  give_up_.clear();
  blocked_.clear();
  delayed_.clear();
  deadlines_.clear();
  prior_attempts_.clear();
  held_back_.clear();
  cursor_changed_ = true;
  held_for_ = 0;
  for (Consumer* consumer : consumers_) consumer->unacked = 0;
}

void Subscription::skip_before(uint64_t first) {
  uint64_t skipped = acks_.raise_floor(first);
  if (skipped == 0) return;
  skipped_ += skipped;
  cursor_changed_ = true;
  next_offset_ = std::max(next_offset_, first);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->first < first) {
      --it->second.consumer->unacked;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  redeliver_.erase(redeliver_.begin(), redeliver_.lower_bound(first));
  give_up_.erase(give_up_.begin(), give_up_.lower_bound(first));
  blocked_.erase(blocked_.begin(), blocked_.lower_bound(first));
  prior_attempts_.erase(prior_attempts_.begin(),
                        prior_attempts_.lower_bound(first));
  held_back_.erase(held_back_.begin(), held_back_.lower_bound(first));
  for (auto it = delayed_.begin(); it != delayed_.end();)
    it = it->second.first < first ? delayed_.erase(it) : std::next(it);
}

bool Subscription::expire(uint64_t now_ms) {
  bool any = false;
  while (!delayed_.empty() && delayed_.begin()->first <= now_ms) {
    auto [offset, attempts] = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    redeliver_[offset] = attempts;
    any = true;
  }
  if (!blocked_.empty() && blocked_retry_ms_ <= now_ms) {
    for (const auto& [offset, blocked] : blocked_) {
      redeliver_[offset] = blocked.first;
      give_up_[offset] = blocked.second;
    }
    blocked_.clear();
    any = true;
  }
  while (!deadlines_.empty()) {
    Deadline d = deadlines_.front();
    auto it = pending_.find(d.offset);
    bool settled = it == pending_.end() || it->second.attempt != d.attempt;
    // Settled entries are dropped even before their time, which keeps the
    // queue as short as what is really outstanding.
    if (!settled && d.at_ms > now_ms) break;
    deadlines_.pop_front();
    if (settled) continue;
    --it->second.consumer->unacked;
    retry(d.offset, d.attempt, backoff_ms(d.attempt), now_ms);
    pending_.erase(it);
    cursor_changed_ = true;
    any = true;
  }
  return any;
}

}  // namespace tern
