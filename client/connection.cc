// Client::Connection's calls (see connection.h): sending frames, waiting for
// replies, the publish window, consumers' queues, and ending the session.
#include "connection.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

// 64 random bits (the OS's random source: getrandom or /dev/urandom with
// libstdc++), so two clients, even on two machines, practically never pick
// the same inbox name or producer.
uint64_t random_u64() {
  std::random_device random;
  return (uint64_t(random()) << 32) | random();
}

}  // namespace

std::string random_hex16() {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)random_u64());
  return hex;
}

Client::Connection::Connection(std::string address, ClientOptions options)
    : address_(std::move(address)),
      options_(std::move(options)),
      producer_(random_u64() | 1) {}

uint64_t Client::Connection::wait_for_link(std::unique_lock<std::mutex>& lock,
                                           Clock::time_point deadline) {
  link_cv_.wait_until(lock, deadline, [&] { return up_ || closed_; });
  if (closed_) throw lost_error();
  if (!up_) {
    throw Error(ErrorCode::kConnectionLost,
                "connection to " + address_ + " lost (" + down_reason_ +
                    ") and not back within " +
                    std::to_string(options_.timeout.count()) +
                    " ms; still reconnecting");
  }
  return generation_;
}

void Client::Connection::send(const flatbuffers::FlatBufferBuilder& fbb,
                              uint64_t generation) {
  bool pinned = generation != 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) throw lost_error();
    if (!pinned)
      generation = wait_for_link(lock, Clock::now() + options_.timeout);
  }
  std::string error;
  if (write_frame(fbb.GetBufferPointer(), fbb.GetSize(), generation, &error) ||
      pinned) {
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) throw lost_error();
  throw Error(ErrorCode::kConnectionLost,
              "connection to " + address_ + " lost: " +
                  (error.empty() ? down_reason_ : "write failed: " + error));
}

Reply Client::Connection::call(uint64_t request_id, wire::Body expect,
                               const flatbuffers::FlatBufferBuilder& fbb,
                               const char* what, Clock::time_point deadline,
                               Resend resend, uint64_t generation) {
  Waiter waiter;
  waiter.expect = expect;
  waiter.resend = resend;
  return call_with(waiter, request_id, fbb, what, deadline, generation);
}

Reply Client::Connection::call_with(Waiter& waiter, uint64_t request_id,
                                    const flatbuffers::FlatBufferBuilder& fbb,
                                    const char* what,
                                    Clock::time_point deadline,
                                    uint64_t generation) {
  waiter.frame = &fbb;
  uint64_t send_on = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) throw lost_error();
    if (generation != 0 && (generation != generation_ || !up_)) {
      throw Error(ErrorCode::kConnectionLost,
                  "connection to " + address_ + " lost: " + down_reason_);
    }
    // While reconnecting the frame waits here; the keeper sends it once a
    // link is up.
    if (up_) send_on = waiter.sent_on = generation_;
    waiters_[request_id] = &waiter;
  }
  // A failed write fails the link; the waiter is then handled like every
  // other one in flight (sent again, or failed).
  if (send_on != 0) write_frame(fbb.GetBufferPointer(), fbb.GetSize(), send_on);

  std::unique_lock<std::mutex> lock(mu_);
  if (!waiter.cv.wait_until(lock, deadline, [&] { return waiter.done; })) {
    waiters_.erase(request_id);
    if (closed_ || !up_) {
      throw Error(ErrorCode::kConnectionLost,
                  std::string("no reply to ") + what + ": connection to " +
                      address_ + " lost (" +
                      (closed_ ? close_reason_ : down_reason_) +
                      ") and not back within " +
                      std::to_string(options_.timeout.count()) + " ms");
    }
    throw Error(ErrorCode::kTimeout,
                std::string("no reply to ") + what + " from " + address_ +
                    " within " + std::to_string(options_.timeout.count()) +
                    " ms");
  }
  // Whoever set done also removed the waiter from waiters_.
  Reply& reply = waiter.reply;
  if (reply.type == wire::Body::Error) throw Error(reply.error, reply.message);
  if (reply.type != waiter.expect) {
    throw Error(ErrorCode::kProtocol, std::string("broker answered ") + what +
                                          " with " +
                                          frame::body_name(reply.type));
  }
  return std::move(reply);
}

void Client::Connection::publish_async(uint64_t request_id, size_t count,
                                       const std::string& topic,
                                       ConfirmCallback on_confirm,
                                       flatbuffers::FlatBufferBuilder& fbb) {
  // Kept until confirmed, to send it again after a reconnect. Moving the
  // builder's buffer out costs no copy.
  auto frame = std::make_shared<flatbuffers::DetachedBuffer>(fbb.Release());
  uint64_t send_on = 0;
  bool held = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    // A batch larger than the whole window still goes out, alone. While
    // reconnecting the wait is bounded by the timeout.
    auto room = [&] {
      return closed_ || unconfirmed_ == 0 ||
             unconfirmed_ + count <= options_.max_unconfirmed;
    };
    while (!window_cv_.wait_for(lock, options_.timeout, room)) {
      if (!up_) wait_for_link(lock, Clock::now());
    }
    if (closed_) throw lost_error();
    if (up_) {
      send_on = generation_;
      held = hold_publish(*frame);
    }
    publishes_.emplace(
        request_id, PendingPublish{count, topic, std::move(on_confirm), frame});
    unconfirmed_ += count;
  }
  // If this fails the link fails, and the publish, recorded, is sent again
  // on the next link or completed with kConnectionLost.
  if (send_on != 0 && !held) write_frame(frame->data(), frame->size(), send_on);
}

void Client::Connection::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  // Cannot hang on an ended session: every publish is completed then. While
  // reconnecting, bounded by the timeout.
  while (!window_cv_.wait_for(lock, options_.timeout,
                              [&] { return unconfirmed_ == 0; })) {
    if (!up_) wait_for_link(lock, Clock::now());
  }
  if (first_publish_error_) {
    Error error = std::move(*first_publish_error_);
    first_publish_error_.reset();
    throw error;
  }
}

size_t Client::Connection::unconfirmed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unconfirmed_;
}

uint64_t Client::Connection::subscribe(const SubscribeOptions& options,
                                       std::string* name) {
  auto consumer = std::make_shared<Consumer>();
  consumer->options = options;
  {
    std::lock_guard<std::mutex> lock(mu_);
    consumer->id = next_consumer_++;
  }
  flatbuffers::FlatBufferBuilder fbb(256);
  uint64_t request_id = next_request_id();
  build_subscribe(fbb, request_id, options);
  Waiter waiter;
  waiter.expect = wire::Body::SubscribeOk;
  // The reader attaches it (and puts it in consumers_) on SubscribeOk.
  waiter.consumer = consumer;
  Reply reply = call_with(waiter, request_id, fbb, "Subscribe",
                          Clock::now() + options_.timeout, 0);
  *name = reply.subscription;
  return consumer->id;
}

std::optional<Message> Client::Connection::next(
    uint64_t consumer_id, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  auto it = consumers_.find(consumer_id);
  if (it == consumers_.end()) {
    throw Error(ErrorCode::kInvalidArgument, "subscription is closed");
  }
  // Holding a reference keeps the condition variable alive even if another
  // thread unsubscribes meanwhile.
  std::shared_ptr<Consumer> consumer = it->second;
  if (consumer->queue.empty() && up_ &&
      acks_since_ns_.load(std::memory_order_relaxed) != 0) {
    // About to wait: what it acked goes now, not after a delay that could
    // hold back the deliveries it waits for.
    uint64_t generation = generation_;
    lock.unlock();
    send_held(generation);
    lock.lock();
  }
  consumer->cv.wait_until(lock, deadline, [&] {
    return !consumer->queue.empty() || closed_ || consumer->detached ||
           consumer->ended;
  });
  // Messages that arrived before the session ended, or before the broker
  // ended the consumer, are still handed out.
  if (!consumer->queue.empty()) {
    Message m = std::move(consumer->queue.front());
    consumer->queue.pop_front();
    return m;
  }
  if (consumer->ended) throw *consumer->ended;
  if (closed_) throw lost_error();
  return std::nullopt;
}

std::pair<uint64_t, uint64_t> Client::Connection::forget_consumer(
    uint64_t consumer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = consumers_.find(consumer_id);
  if (it == consumers_.end()) return {0, 0};
  Consumer& consumer = *it->second;
  std::pair<uint64_t, uint64_t> route{0, 0};
  if (!consumer.ended && up_ && consumer.generation == generation_ &&
      consumer.broker_id != 0) {
    route = {consumer.broker_id, consumer.generation};
    attached_.erase(consumer.broker_id);
  }
  consumer.detached = true;
  consumer.cv.notify_all();
  consumers_.erase(it);
  return route;
}

std::pair<uint64_t, uint64_t> Client::Connection::route(uint64_t consumer_id,
                                                        uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  return route_of(consumer_locked(consumer_id), generation);
}

const Client::Connection::Consumer& Client::Connection::consumer_locked(
    uint64_t consumer_id) const {
  if (closed_) throw lost_error();
  auto it = consumers_.find(consumer_id);
  if (it == consumers_.end()) {
    throw Error(ErrorCode::kInvalidArgument, "subscription is closed");
  }
  return *it->second;
}

std::pair<uint64_t, uint64_t> Client::Connection::route_of(
    const Consumer& consumer, uint64_t generation) {
  if (consumer.broker_id == 0) return {0, 0};
  if (generation != 0 && generation != consumer.generation) return {0, 0};
  return {consumer.broker_id, consumer.generation};
}

void Client::Connection::remember_temporary(
    const std::string& name, const flatbuffers::FlatBufferBuilder& create) {
  std::lock_guard<std::mutex> lock(mu_);
  temporary_[name].assign(
      reinterpret_cast<const char*>(create.GetBufferPointer()),
      create.GetSize());
}

void Client::Connection::forget_temporary(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  temporary_.erase(name);
}

void Client::Connection::check_open() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) throw lost_error();
}

bool Client::Connection::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return up_ && !closed_;
}

Error Client::Connection::lost_error() const {
  return Error(ErrorCode::kConnectionLost,
               "connection to " + address_ + " lost: " + close_reason_);
}

void Client::Connection::end_locked(const std::string& reason, ErrorCode code) {
  if (closed_) return;
  closed_ = true;
  up_ = false;
  close_reason_ = reason;
  for (auto& [id, waiter] : waiters_) {
    waiter->reply.type = wire::Body::Error;
    waiter->reply.error = code;
    waiter->reply.message = lost_error().what();
    waiter->done = true;
    waiter->cv.notify_one();
  }
  waiters_.clear();
  for (auto& [id, consumer] : consumers_) consumer->cv.notify_all();
  window_cv_.notify_all();
  link_cv_.notify_all();
  keeper_cv_.notify_all();
}

}  // namespace tern
