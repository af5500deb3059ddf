#include "subscription.h"

#include <algorithm>

#include "connection.h"
#include "consumer.h"
#include "log.h"
#include "topic.h"

namespace tern {

namespace {
// A Deliver frame is sent once it holds this much, so one frame never grows
// without bound however much credit a consumer gives.
constexpr size_t kMaxDeliverFrameBytes = 1u << 20;
}  // namespace

Subscription::Subscription(Topic& topic, std::string name,
                           uint32_t ack_timeout_ms, AckSet acks,
                           uint64_t start)
    : topic_(topic),
      name_(std::move(name)),
      ack_timeout_ms_(ack_timeout_ms),
      acks_(std::move(acks)),
      next_offset_(std::max(start, acks_.floor())) {}

void Subscription::add_consumer(Consumer& consumer) {
  consumers_.push_back(&consumer);
}

void Subscription::remove_consumer(Consumer& consumer) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.consumer == &consumer) {
      redeliver_[it->first] = it->second.attempt;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  consumer.unacked = 0;
  consumers_.erase(std::find(consumers_.begin(), consumers_.end(), &consumer));
  next_consumer_ = 0;
}

bool Subscription::ack(Consumer& consumer, uint64_t first, uint64_t last) {
  if (last < first) return false;
  bool changed = false;
  // Settles what this consumer holds, and what was taken back from it but not
  // yet handed out again. A message now held by another consumer stays
  // theirs: an ack range must never settle work someone else is doing.
  auto settle = [&](uint64_t offset) {
    auto it = pending_.find(offset);
    if (it != pending_.end()) {
      if (it->second.consumer != &consumer) return;
      --consumer.unacked;
      pending_.erase(it);
    } else if (redeliver_.erase(offset) == 0) {
      return;
    }
    changed |= acks_.add(offset, offset);
  };
  if (last - first < pending_.size() + redeliver_.size()) {
    for (uint64_t o = first;; ++o) {
      settle(o);
      if (o == last) break;
    }
  } else {
    std::vector<uint64_t> offsets;
    for (const auto& [offset, pending] : pending_)
      if (offset >= first && offset <= last && pending.consumer == &consumer)
        offsets.push_back(offset);
    for (auto it = redeliver_.lower_bound(first);
         it != redeliver_.end() && it->first <= last; ++it)
      offsets.push_back(it->first);
    for (uint64_t o : offsets) settle(o);
  }
  return changed;
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
bool Subscription::next_message(uint64_t* offset, uint32_t* attempt,
                                const wire::StoredMessage** record) {
  while (!redeliver_.empty()) {
    auto it = redeliver_.begin();
    uint64_t wanted = it->first, o = wanted;
    *attempt = it->second + 1;
    redeliver_.erase(it);
    *record = topic_.record_at_or_after(&o);
    if (*record != nullptr && o == wanted) {
      *offset = o;
      return true;
    }
  }
  while (next_offset_ < topic_.committed_end()) {
    if (acks_.contains(next_offset_)) {
      ++next_offset_;
      continue;
    }
    uint64_t o = next_offset_;
    *record = topic_.record_at_or_after(&o);
    if (*record == nullptr) return false;
    // Offsets skipped were never stored (a failed commit): count them done.
    if (o > next_offset_) acks_.add(next_offset_, o - 1);
    next_offset_ = o + 1;
    if (acks_.contains(o)) continue;
    *offset = o;
    *attempt = 1;
    return true;
  }
  return false;
}

void Subscription::dispatch(uint64_t now_ms) {
  if (consumers_.empty()) return;
  std::vector<Consumer*> touched;
  while (Consumer* consumer = next_consumer_with_credit()) {
    uint64_t offset;
    uint32_t attempt;
    const wire::StoredMessage* message;
    if (!next_message(&offset, &attempt, &message)) break;
    consumer->outgoing.add(offset, attempt, *message);
    pending_[offset] = {consumer, attempt};
    deadlines_.push_back({now_ms + ack_timeout_ms_, offset, attempt});
    ++consumer->unacked;
    if (consumer->outgoing.count() == 1) touched.push_back(consumer);
    if (consumer->outgoing.bytes() >= kMaxDeliverFrameBytes) flush(*consumer);
  }
  for (Consumer* consumer : touched) flush(*consumer);
}

void Subscription::flush(Consumer& consumer) {
  if (consumer.outgoing.count() == 0) return;
  consumer.connection.send(
      consumer.outgoing.finish(consumer.id, topic_.name(), name_));
}

bool Subscription::expire(uint64_t now_ms) {
  bool any = false;
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
    redeliver_[d.offset] = d.attempt;
    pending_.erase(it);
    any = true;
  }
  return any;
}

}  // namespace tern
