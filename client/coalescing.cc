// Client::Connection's coalescing (see connection.h): which frames are held
// back to leave together, the open Ack that ranges merge into, and when what
// is held goes out.
#include "connection.h"

namespace tern {
namespace {

// Up to what the broker reads at once; more goes out now, held ones first.
constexpr size_t kMaxHeldBytes = 64 * 1024;
// A publisher calling again this soon after the last write is streaming;
// one calling later (paced, or idle) is not held: it would only wait.
constexpr int64_t kStreamingNs = 50 * 1000;
// Publishes are held only behind this many unanswered on the wire. A held
// publish misses the broker's next commit if other frames arrive meanwhile,
// so a paced publisher with a few in flight, catching up after a late
// wake-up, is not held; a streaming one soon has more than this in flight.
constexpr size_t kHoldBehind = 16;
// Acks leave at the latest once they cover this many offsets (and after
// kAckDelayNs): the broker's prefetch window reopens steadily.
constexpr uint64_t kMaxOpenAckOffsets = 128;

}  // namespace

bool Client::Connection::hold_publish(
    const flatbuffers::DetachedBuffer& frame) {
  std::lock_guard<std::mutex> lock(held_mu_);
  // Only behind publishes on the wire, whose answers make the reader send
  // what is held: a held publish never waits for a timer.
  bool behind_enough = publishes_.size() >= held_publishes_ + kHoldBehind;
  bool streaming =
      held_publishes_ != 0 ||
      now_ns() - last_write_ns_.load(std::memory_order_relaxed) < kStreamingNs;
  if (!behind_enough || !streaming ||
      held_.size() + frame.size() > kMaxHeldBytes) {
    return false;
  }
  seal_ack_locked();  // acks made before it go before it
  held_.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  ++held_publishes_;
  return true;
}

void Client::Connection::ack(uint64_t consumer, uint64_t generation,
                             uint64_t first, uint64_t last,
                             const std::string& topic) {
  bool send_now;
  uint64_t on;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Consumer& acked = consumer_locked(consumer);
    auto [broker_id, link] = route_of(acked, generation);
    // A delivery of an earlier link is settled by the broker itself: it
    // redelivers it (durable) or it is gone (ephemeral). Nothing to send.
    if (broker_id == 0 || !up_ || link != generation_) return;
    on = link;
    // Held only while more deliveries wait: their acks will follow at once.
    // With none queued it goes now, as nothing may come for a while.
    bool more_queued = !acked.queue.empty();
    std::lock_guard<std::mutex> held(held_mu_);
    OpenAck& open = open_ack_;
    if (!open.ranges.empty() &&
        (open.consumer != broker_id || open.topic != topic)) {
      seal_ack_locked();
    }
    if (open.ranges.empty()) {
      open.consumer = broker_id;
      open.topic = topic;
    }
    if (!open.ranges.empty() && open.ranges.back().last() + 1 == first) {
      open.ranges.back() = wire::OffsetRange(open.ranges.back().first(), last);
    } else {
      open.ranges.emplace_back(first, last);
    }
    open.offsets += last - first + 1;
    send_now = !more_queued || open.offsets >= kMaxOpenAckOffsets ||
               held_.size() >= kMaxHeldBytes;
    if (!send_now && acks_since_ns_.load(std::memory_order_relaxed) == 0) {
      acks_since_ns_.store(now_ns(), std::memory_order_relaxed);
      // The keeper sends them within kAckDelayNs: it is told unless it is
      // timing acks already (then it finds these when it wakes).
      if (!keeper_times_acks_) {
        keeper_times_acks_ = true;
        keeper_cv_.notify_all();
      }
    }
  }
  if (send_now) write_frame(nullptr, 0, on);
}

void Client::Connection::seal_ack_locked() {
  OpenAck& open = open_ack_;
  if (open.ranges.empty()) return;
  flatbuffers::FlatBufferBuilder& fbb = ack_fbb_;
  fbb.Clear();
  auto ranges = fbb.CreateVectorOfStructs(open.ranges);
  // Only a wildcard consumer needs the topic; the others save the bytes.
  auto topic = open.topic.empty() ? 0 : fbb.CreateString(open.topic);
  frame::finish(fbb, wire::Body::Ack,
                wire::CreateAck(fbb, open.consumer, ranges, topic).Union());
  held_.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
               fbb.GetSize());
  open.ranges.clear();
  open.offsets = 0;
}

void Client::Connection::send_held(uint64_t generation) {
  {
    std::lock_guard<std::mutex> lock(held_mu_);
    if (held_.empty() && open_ack_.ranges.empty()) {
      acks_since_ns_.store(0, std::memory_order_relaxed);  // none held
      return;
    }
  }
  write_frame(nullptr, 0, generation);
}

}  // namespace tern
