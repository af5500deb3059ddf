#include "connection.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "socket.h"

namespace tern {

std::shared_ptr<Client::Connection> Client::Connection::open(
    const std::string& address, const ClientOptions& options) {
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  int fd = net::connect_tcp(address, options.timeout);
  std::unique_ptr<net::TlsStream> tls;
  if (net::wants_tls(options)) {
    try {
      tls = std::make_unique<net::TlsStream>(fd, address, options, deadline);
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  // make_shared cannot reach the private constructor.
  std::shared_ptr<Connection> c(
      new Connection(address, options, fd, std::move(tls)));
  // The reader holds a reference until it finishes, so the connection cannot
  // be destroyed under it; close() is what makes it finish.
  c->reader_ = std::thread([self = c]() mutable {
    self->read_loop();
    self.reset();  // may run the destructor, here on the reader thread
  });
  return c;
}

Client::Connection::Connection(std::string address, ClientOptions options,
                               int fd, std::unique_ptr<net::TlsStream> tls)
    : address_(std::move(address)),
      options_(std::move(options)),
      fd_(fd),
      tls_(std::move(tls)) {}

Client::Connection::~Connection() {
  close();
  // Only reached with the reader still joinable when the reader thread itself
  // dropped the last reference, as its very last act.
  if (reader_.joinable()) reader_.detach();
  ::close(fd_);
}

void Client::Connection::send(const flatbuffers::FlatBufferBuilder& fbb) {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    check_open();
    if (tls_) {
      error = tls_->write(fbb.GetBufferPointer(), fbb.GetSize());
    } else if (int err =
                   net::send_all(fd_, fbb.GetBufferPointer(), fbb.GetSize())) {
      error = std::strerror(err);
    }
  }
  if (!error.empty()) {
    fail("write failed: " + error);
    std::lock_guard<std::mutex> lock(mu_);
    throw lost_error();
  }
}

Reply Client::Connection::call(uint64_t request_id, wire::Body expect,
                               const flatbuffers::FlatBufferBuilder& fbb,
                               const char* what,
                               std::chrono::steady_clock::time_point deadline) {
  Waiter waiter;
  waiter.expect = expect;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) throw lost_error();
    waiters_[request_id] = &waiter;
  }
  try {
    send(fbb);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.erase(request_id);
    throw;
  }

  std::unique_lock<std::mutex> lock(mu_);
  if (!waiter.cv.wait_until(lock, deadline, [&] { return waiter.done; })) {
    waiters_.erase(request_id);
    throw Error(ErrorCode::kTimeout,
                std::string("no reply to ") + what + " from " + address_ +
                    " within " + std::to_string(options_.timeout.count()) +
                    " ms");
  }
  // Whoever set done also removed the waiter from waiters_.
  Reply& reply = waiter.reply;
  if (reply.type == wire::Body::Error) throw Error(reply.error, reply.message);
  if (reply.type != expect) {
    throw Error(ErrorCode::kProtocol, std::string("broker answered ") + what +
                                          " with " +
                                          frame::body_name(reply.type));
  }
  return std::move(reply);
}

void Client::Connection::publish_async(
    uint64_t request_id, size_t count, const std::string& topic,
    ConfirmCallback on_confirm, const flatbuffers::FlatBufferBuilder& fbb) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    // A batch larger than the whole window still goes out, alone.
    window_cv_.wait(lock, [&] {
      return closed_ || unconfirmed_ == 0 ||
             unconfirmed_ + count <= options_.max_unconfirmed;
    });
    if (closed_) throw lost_error();
    publishes_.emplace(request_id,
                       PendingPublish{count, topic, std::move(on_confirm)});
    unconfirmed_ += count;
  }
  // If this fails the publish stays recorded; the reader completes it with
  // kConnectionLost once it sees the socket shut down.
  send(fbb);
}

void Client::Connection::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  // Cannot hang on a lost connection: the reader completes every publish
  // before it exits.
  window_cv_.wait(lock, [&] { return unconfirmed_ == 0; });
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

std::optional<Message> Client::Connection::next(
    uint64_t consumer_id, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  auto it = consumers_.find(consumer_id);
  if (it == consumers_.end()) {
    throw Error(ErrorCode::kInvalidArgument, "subscription is closed");
  }
  // Holding a reference keeps the condition variable alive even if another
  // thread unsubscribes meanwhile.
  std::shared_ptr<Consumer> consumer = it->second;
  consumer->cv.wait_until(lock, deadline, [&] {
    return !consumer->queue.empty() || closed_ || consumer->detached ||
           consumer->ended;
  });
  // Messages that arrived before the connection died, or before the broker
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

bool Client::Connection::forget_consumer(uint64_t consumer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = consumers_.find(consumer_id);
  if (it == consumers_.end()) return false;
  bool live = !it->second->ended;
  it->second->detached = true;
  it->second->cv.notify_all();
  consumers_.erase(it);
  return live;
}

void Client::Connection::check_open() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) throw lost_error();
}

bool Client::Connection::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !closed_;
}

void Client::Connection::close() {
  fail("closed by the client");
  std::lock_guard<std::mutex> lock(close_mu_);
  if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) {
    reader_.join();
  }
}

Error Client::Connection::lost_error() const {
  return Error(ErrorCode::kConnectionLost,
               "connection to " + address_ + " lost: " + close_reason_);
}

void Client::Connection::fail(const std::string& reason, ErrorCode code) {
  std::vector<std::shared_ptr<Consumer>> consumers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
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
  }
  // Wakes the reader's recv() and any writer stuck in send(). The descriptor
  // stays open (see the destructor), so this cannot hit a reused one.
  ::shutdown(fd_, SHUT_RDWR);
}

}  // namespace tern
