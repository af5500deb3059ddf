// Client::Connection's links and its keeper thread (see connection.h): opening
// a link and logging in, heartbeats, noticing a lost link, and reconnecting
// with jittered exponential backoff — then logging in again, re-creating the
// temporary topics, re-attaching the consumers and re-sending every request
// that was not answered, in the order they were first sent.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

#include "connection.h"
#include "socket.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

// A broker answer that no new attempt will change.
bool is_final(ErrorCode code) {
  return code == ErrorCode::kNotAuthorized ||
         code == ErrorCode::kUnsupportedVersion;
}

}  // namespace

Client::Connection::Link::Link(int fd, std::unique_ptr<net::TlsStream> tls)
    : fd(fd), tls(std::move(tls)) {}

Client::Connection::Link::~Link() {
  tls.reset();
  ::close(fd);
}

std::shared_ptr<Client::Connection> Client::Connection::open(
    const std::string& address, const ClientOptions& options) {
  // make_shared cannot reach the private constructor.
  std::shared_ptr<Connection> c(new Connection(address, options));
  auto deadline = Clock::now() + options.timeout;
  std::unique_ptr<Link> link = c->connect_link(deadline);
  {
    std::scoped_lock lock(c->write_mu_, c->mu_);
    c->link_ = std::move(link);
    c->link_->generation = c->generation_ = 1;
    Link* l = c->link_.get();
    l->reader = std::thread([c = c.get(), l] { c->read_loop(*l); });
  }
  Reply reply;
  try {
    reply = c->hello(1, deadline);
  } catch (const Error& e) {
    {
      std::lock_guard<std::mutex> lock(c->mu_);
      c->end_locked(e.what(), ErrorCode::kConnectionLost);
    }
    c->fail_link(0, "closed by the client");
    c->link_->reader.join();
    if (e.code() == ErrorCode::kTimeout) {
      throw Error(ErrorCode::kConnectFailed,
                  "cannot connect to " + address +
                      ": no reply to Hello within " +
                      std::to_string(options.timeout.count()) + " ms");
    }
    if (e.code() == ErrorCode::kConnectionLost) {
      throw Error(ErrorCode::kConnectFailed,
                  "cannot connect to " + address + ": " + e.what());
    }
    throw Error(e.code(), "broker at " + address +
                              " refused the connection: " + e.what());
  }
  {
    std::lock_guard<std::mutex> lock(c->mu_);
    c->up_ = true;
  }
  // The keeper holds a reference until it finishes, so the connection cannot
  // be destroyed under it (or under the reader, which it joins); close() is
  // what makes it finish.
  c->keeper_ = std::thread([self = c]() mutable {
    self->keep();
    self.reset();  // may run the destructor, here on the keeper thread
  });
  return c;
}

Client::Connection::~Connection() {
  close();
  // Only reached with the keeper still joinable when the keeper thread itself
  // dropped the last reference, as its very last act.
  if (keeper_.joinable()) keeper_.detach();
}

void Client::Connection::close() {
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (up_) generation = generation_;
  }
  // What was acked and is still held goes before the link does.
  if (generation != 0) send_held(generation);
  {
    std::lock_guard<std::mutex> lock(mu_);
    end_locked("closed by the client", ErrorCode::kConnectionLost);
  }
  fail_link(0, "closed by the client");
  std::lock_guard<std::mutex> lock(close_mu_);
  std::thread::id self = std::this_thread::get_id();
  bool on_reader = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    on_reader = link_ && link_->reader.get_id() == self;
  }
  // From the reader (a callback), the keeper finishes by itself once the
  // callback returns: it joins the reader, never the other way round.
  if (keeper_.joinable() && keeper_.get_id() != self && !on_reader) {
    keeper_.join();
  }
}

std::unique_ptr<Client::Connection::Link> Client::Connection::connect_link(
    Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  int fd =
      net::connect_tcp(address_, std::max(left, std::chrono::milliseconds(1)));
  std::unique_ptr<net::TlsStream> tls;
  if (net::wants_tls(options_)) {
    try {
      tls = std::make_unique<net::TlsStream>(fd, address_, options_, deadline);
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  set_heard_from_broker();
  return std::make_unique<Link>(fd, std::move(tls));
}

Reply Client::Connection::hello(uint64_t generation,
                                Clock::time_point deadline) {
  flatbuffers::FlatBufferBuilder fbb(128);
  uint64_t id = next_request_id();
  auto name = fbb.CreateString(options_.client_name);
  auto user = options_.user.empty() ? 0 : fbb.CreateString(options_.user);
  auto password =
      options_.password.empty() ? 0 : fbb.CreateString(options_.password);
  auto token = options_.token.empty() ? 0 : fbb.CreateString(options_.token);
  uint32_t heartbeat =
      uint32_t(std::clamp<int64_t>(options_.heartbeat.count(), 0, 3600 * 1000));
  frame::finish(fbb, wire::Body::Hello,
                wire::CreateHello(fbb, id, frame::kProtocolVersion, name, token,
                                  user, password, heartbeat)
                    .Union());
  Reply reply = keeper_call(id, wire::Body::HelloOk, fbb.GetBufferPointer(),
                            fbb.GetSize(), generation, deadline);
  if (reply.type == wire::Body::Error) throw Error(reply.error, reply.message);
  if (reply.type != wire::Body::HelloOk) {
    throw Error(ErrorCode::kProtocol,
                std::string("broker answered Hello with ") +
                    frame::body_name(reply.type));
  }
  // The broker's limit applies to what we send. Zero would be a broker bug;
  // fall back to the protocol default rather than refusing everything.
  max_frame_bytes_ = reply.max_frame_bytes != 0 ? reply.max_frame_bytes
                                                : frame::kDefaultMaxFrameBytes;
  // The value in force (the broker keeps it within its bounds); a broker
  // that knows no heartbeats echoes 0, and pings still tell us it is there.
  heartbeat_ms_ = reply.heartbeat_ms != 0 ? reply.heartbeat_ms : heartbeat;
  return reply;
}

bool Client::Connection::write_frame(const uint8_t* data, size_t size,
                                     uint64_t generation, std::string* error) {
  std::string failure;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (write_locked(data, size, generation, &failure)) return true;
  }
  if (!failure.empty()) fail_link(generation, "write failed: " + failure);
  if (error) *error = failure;
  return false;
}

bool Client::Connection::write_locked(const uint8_t* data, size_t size,
                                      uint64_t generation, std::string* failure,
                                      bool held) {
  Link* link = link_.get();
  if (link == nullptr || link->generation != generation) return false;
  if (held) {
    {
      std::lock_guard<std::mutex> lock(held_mu_);
      seal_ack_locked();
      // Swapping keeps both buffers' capacity: no allocation per write.
      writing_.clear();
      writing_.swap(held_);
      held_publishes_ = 0;
      acks_since_ns_.store(0, std::memory_order_relaxed);
    }
    if (!writing_.empty()) {
      writing_.append(reinterpret_cast<const char*>(data), size);
      data = reinterpret_cast<const uint8_t*>(writing_.data());
      size = writing_.size();
    }
  }
  if (size == 0) return true;
  last_write_ns_.store(now_ns(), std::memory_order_relaxed);
  if (link->tls) {
    *failure = link->tls->write(data, size);
  } else if (int err = net::send_all(link->fd, data, size)) {
    *failure = std::strerror(err);
  }
  last_write_ns_.store(now_ns(), std::memory_order_relaxed);
  return failure->empty();
}

void Client::Connection::set_heard_from_broker() {
  last_read_ns_.store(now_ns(), std::memory_order_relaxed);
}

void Client::Connection::fail_link(uint64_t generation,
                                   const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!link_ || (generation != 0 && link_->generation != generation)) return;
  if (link_->reason.empty()) link_->reason = reason;
  // Wakes the reader's recv() and any writer stuck in send(). The descriptor
  // stays open (see Lifetime), so this cannot hit a reused one.
  ::shutdown(link_->fd, SHUT_RDWR);
}

void Client::Connection::link_lost(uint64_t generation, const std::string& why,
                                   ErrorCode why_code) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string reason = why;
  ErrorCode code = why_code;
  if (link_ && link_->generation == generation && !link_->reason.empty()) {
    reason = link_->reason;
    code = link_->code;
  }
  down_reason_ = reason;
  down_code_ = code;
  link_down_ = true;
  bool was_up = up_;
  up_ = false;
  attached_.clear();
  keeper_cv_.notify_all();
  if (closed_) return;
  if (!options_.reconnect || is_final(code) || !was_up) {
    // Without reconnect the session ends with its link. A link lost before
    // it was up (during a reconnect) is the keeper's to retry.
    if (!options_.reconnect || is_final(code)) end_locked(reason, code);
    if (!was_up) {
      // The keeper's own calls in flight fail; it tries again.
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        Waiter* w = it->second;
        if (!w->internal) {
          ++it;
          continue;
        }
        w->reply.type = wire::Body::Error;
        w->reply.error = code;
        w->reply.message = reason;
        w->done = true;
        w->cv.notify_one();
        it = waiters_.erase(it);
      }
    }
    return;
  }
  // Reconnecting. Calls that may have reached the broker and must not be
  // sent twice fail; the rest wait for the next link.
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    Waiter* w = it->second;
    if (w->internal ||
        (w->resend == Resend::kNever && w->sent_on == generation)) {
      w->reply.type = wire::Body::Error;
      w->reply.error = ErrorCode::kConnectionLost;
      w->reply.message = "connection to " + address_ + " lost (" + reason +
                         "): the request may or may not have been done";
      w->done = true;
      w->cv.notify_one();
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  // A durable subscription's unacked deliveries come again from the broker;
  // handing out the queued copies as well would only double them. An
  // ephemeral one's are kept: nothing else would deliver them.
  for (auto& [id, consumer] : consumers_) {
    if (!consumer->options.subscription.empty()) consumer->queue.clear();
  }
}

void Client::Connection::keep() {
  std::mt19937_64 random(std::random_device{}());
  auto backoff = options_.reconnect_min_delay;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (closed_) break;
    if (link_down_) {
      Link* old = link_.get();
      std::string reason = down_reason_;
      lock.unlock();
      // Already shut down, unless a reconnect attempt gave up on a link that
      // still stands (no answer in time): its reader must end to be joined.
      fail_link(0, reason);
      if (old != nullptr && old->reader.joinable()) old->reader.join();
      {
        std::scoped_lock both(write_mu_, mu_);
        link_.reset();  // closes the descriptor; nobody uses it any more
        link_down_ = false;
        // Their publishes are sent again, in order, on the next link; their
        // acks are void (the broker redelivers).
        std::lock_guard<std::mutex> held(held_mu_);
        held_.clear();
        held_publishes_ = 0;
        open_ack_.ranges.clear();
        open_ack_.offsets = 0;
        acks_since_ns_.store(0, std::memory_order_relaxed);
      }
      // Full jitter on the upper half: clients that lost the same broker do
      // not all come back in the same millisecond.
      auto delay =
          std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(
              backoff.count() / 2, backoff.count())(random));
      backoff = std::min(backoff * 2, options_.reconnect_max_delay);
      lock.lock();
      keeper_cv_.wait_for(lock, delay, [&] { return closed_; });
      if (closed_) break;
      lock.unlock();
      try {
        reconnect();
        backoff = options_.reconnect_min_delay;
      } catch (const Error& e) {
        std::lock_guard<std::mutex> l(mu_);
        if (is_final(e.code())) {
          end_locked(e.what(), e.code());
        } else {
          down_reason_ = e.what();
          link_down_ = true;  // try again after the next delay
        }
      }
      lock.lock();
      continue;
    }
    if (!up_) {
      keeper_cv_.wait(lock, [&] { return closed_ || link_down_; });
      continue;
    }
    // Four looks per heartbeat interval: a ping goes out well before the
    // broker's deadline of two intervals.
    uint32_t interval = heartbeat_ms_.load();
    std::chrono::nanoseconds look = std::chrono::hours(1);
    if (interval != 0)
      look = std::chrono::milliseconds(std::max(interval / 4, 10u));
    // Held acks leave at the latest kAckDelayNs after the first (see
    // Coalescing in connection.h); ack() wakes us for the first.
    int64_t acks_since = acks_since_ns_.load(std::memory_order_relaxed);
    keeper_times_acks_ = acks_since != 0;
    if (acks_since != 0) {
      std::chrono::nanoseconds left(acks_since + kAckDelayNs - now_ns());
      if (left.count() <= 0) {
        uint64_t generation = generation_;
        lock.unlock();
        send_held(generation);
        lock.lock();
        continue;
      }
      look = std::min(look, left);
    }
    keeper_cv_.wait_for(lock, look, [&] {
      return closed_ || link_down_ || (keeper_times_acks_ && acks_since == 0);
    });
    if (closed_ || link_down_ || !up_ || interval == 0) continue;
    lock.unlock();
    heartbeat();
    lock.lock();
  }
  Link* last = link_.get();
  lock.unlock();
  fail_link(0, "closed by the client");
  if (last != nullptr && last->reader.joinable()) last->reader.join();
  // Publishes recorded while no reader ran (reconnecting) end here.
  complete_all_publishes();
}

void Client::Connection::heartbeat() {
  uint32_t interval = heartbeat_ms_.load();
  int64_t now = now_ns();
  int64_t interval_ns = int64_t(interval) * 1000000;
  int64_t silent = now - last_read_ns_.load(std::memory_order_relaxed);
  if (silent >= 2 * interval_ns) {
    fail_link(0, "no frame from the broker for " +
                     std::to_string(silent / 1000000) +
                     " ms: it stopped or is unreachable");
    return;
  }
  bool quiet =
      now - last_write_ns_.load(std::memory_order_relaxed) >= interval_ns;
  // Nothing heard for an interval: a Pong will say the broker is there.
  if (!quiet && silent < interval_ns) return;
  flatbuffers::FlatBufferBuilder fbb(64);
  // Nobody waits for the Pong: the reader drops a reply without a waiter.
  frame::finish(fbb, wire::Body::Ping,
                wire::CreatePing(fbb, next_request_id()).Union());
  uint64_t generation;
  std::string failure;
  {
    // Never behind a writer: a write in progress is sending.
    std::unique_lock<std::mutex> write(write_mu_, std::try_to_lock);
    if (!write.owns_lock()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!up_) return;
      generation = generation_;
    }
    if (write_locked(fbb.GetBufferPointer(), fbb.GetSize(), generation,
                     &failure)) {
      return;
    }
  }
  if (!failure.empty()) fail_link(generation, "write failed: " + failure);
}

Reply Client::Connection::keeper_call(uint64_t request_id, wire::Body expect,
                                      const uint8_t* data, size_t size,
                                      uint64_t generation,
                                      Clock::time_point deadline,
                                      std::shared_ptr<Consumer> consumer) {
  Waiter waiter;
  waiter.expect = expect;
  waiter.internal = true;
  waiter.sent_on = generation;
  waiter.consumer = std::move(consumer);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The link may be gone already (e.g. a broker that refuses connections
    // says why and closes at once): nobody would answer, or fail, the waiter.
    if (closed_ || link_down_ || !link_ || link_->generation != generation) {
      Reply lost;
      lost.type = wire::Body::Error;
      lost.error = closed_ ? ErrorCode::kConnectionLost : down_code_;
      lost.message = closed_ ? close_reason_ : down_reason_;
      return lost;
    }
    waiters_[request_id] = &waiter;
  }
  // A failed write fails the link, and with it this waiter.
  write_frame(data, size, generation);
  std::unique_lock<std::mutex> lock(mu_);
  if (!waiter.cv.wait_until(lock, deadline, [&] { return waiter.done; })) {
    waiters_.erase(request_id);
    throw Error(ErrorCode::kTimeout,
                std::string("no ") + frame::body_name(expect) + " from " +
                    address_ + " within " +
                    std::to_string(options_.timeout.count()) + " ms");
  }
  return std::move(waiter.reply);
}

void Client::Connection::reconnect() {
  auto deadline = Clock::now() + options_.timeout;
  std::unique_ptr<Link> link = connect_link(deadline);
  uint64_t generation;
  {
    std::scoped_lock lock(write_mu_, mu_);
    if (closed_) return;
    link_ = std::move(link);
    generation = link_->generation = ++generation_;
    Link* l = link_.get();
    l->reader = std::thread([this, l] { read_loop(*l); });
  }
  hello(generation, deadline);
  std::vector<std::string> temporary;
  std::vector<std::shared_ptr<Consumer>> consumers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, frame] : temporary_) temporary.push_back(frame);
    for (auto& [id, consumer] : consumers_) {
      if (!consumer->ended && !consumer->detached)
        consumers.push_back(consumer);
    }
  }
  for (const std::string& create : temporary) {
    // The temporary topic ended with the old link; make it again (its
    // request id is unused on this link).
    auto* frame = wire::GetSizePrefixedFrame(create.data());
    uint64_t id = frame->body_as_CreateTopic()->request_id();
    Reply reply = keeper_call(id, wire::Body::CreateTopicOk,
                              reinterpret_cast<const uint8_t*>(create.data()),
                              create.size(), generation, deadline);
    if (reply.type == wire::Body::Error &&
        reply.error == ErrorCode::kConnectionLost) {
      throw Error(reply.error, reply.message);
    }
  }
  std::sort(consumers.begin(), consumers.end(),
            [](const auto& a, const auto& b) { return a->id < b->id; });
  for (const auto& consumer : consumers)
    resubscribe(generation, consumer, deadline);
  resend_pending(generation);
}

void Client::Connection::resubscribe(uint64_t generation,
                                     const std::shared_ptr<Consumer>& consumer,
                                     Clock::time_point deadline) {
  SubscribeOptions options = consumer->options;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A durable subscription resumes at its cursor whatever `start` says. An
    // ephemeral one is new: it resumes right after the last message it got
    // (a single topic; a pattern's offsets are per topic), or else at the
    // latest message, missing what was published meanwhile.
    if (options.subscription.empty()) {
      bool pattern = options.topic.find_first_of("*>") != std::string::npos;
      if (consumer->next_offset != 0 && !pattern) {
        options.start = StartPosition::kOffset;
        options.start_offset = consumer->next_offset;
      } else if (consumer->generation != 0) {
        options.start = StartPosition::kLatest;
      }
    }
  }
  flatbuffers::FlatBufferBuilder fbb(256);
  uint64_t id = next_request_id();
  build_subscribe(fbb, id, options);
  Reply reply = keeper_call(id, wire::Body::SubscribeOk, fbb.GetBufferPointer(),
                            fbb.GetSize(), generation, deadline, consumer);
  if (reply.type != wire::Body::Error) return;
  if (reply.error == ErrorCode::kConnectionLost)
    throw Error(reply.error, reply.message);
  // The broker refuses this consumer now (its topic was deleted, the user
  // lost the permission): it ends, and next() says why.
  std::lock_guard<std::mutex> lock(mu_);
  consumer->ended.emplace(
      reply.error,
      "subscription not re-attached after reconnecting: " + reply.message);
  consumer->cv.notify_all();
}

void Client::Connection::resend_pending(uint64_t generation) {
  // Holding write_mu_ from the snapshot to the last write puts these frames
  // before any new one: a call made after up_ turns true waits for the lock.
  std::unique_lock<std::mutex> write(write_mu_);
  std::map<uint64_t, std::string> waiting;  // copies: a caller may time out
  std::map<uint64_t, std::shared_ptr<flatbuffers::DetachedBuffer>> publishes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || !link_ || link_->generation != generation) {
      throw Error(ErrorCode::kConnectionLost, down_reason_);
    }
    for (auto& [id, w] : waiters_) {
      if (w->internal || w->frame == nullptr) continue;
      w->sent_on = generation;
      waiting[id].assign(
          reinterpret_cast<const char*>(w->frame->GetBufferPointer()),
          w->frame->GetSize());
    }
    for (auto& [id, p] : publishes_) publishes[id] = p.frame;
    up_ = true;
    link_cv_.notify_all();
    window_cv_.notify_all();
  }
  // Request ids grow with time, so this is the order they were first sent.
  std::string failure;
  auto w = waiting.begin();
  auto p = publishes.begin();
  while (w != waiting.end() || p != publishes.end()) {
    bool take_waiter =
        p == publishes.end() || (w != waiting.end() && w->first < p->first);
    // Frames held back meanwhile are newer: they wait for these.
    bool ok =
        take_waiter
            ? write_locked(reinterpret_cast<const uint8_t*>(w->second.data()),
                           w->second.size(), generation, &failure, false)
            : write_locked(p->second->data(), p->second->size(), generation,
                           &failure, false);
    // A failed link: the next one sends them all again.
    if (!ok) break;
    if (take_waiter)
      ++w;
    else
      ++p;
  }
  write.unlock();
  if (!failure.empty()) fail_link(generation, "write failed: " + failure);
}

}  // namespace tern
