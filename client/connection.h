// Client::Connection — one TCP connection to a broker, shared by a Client and
// its Subscriptions.
//
// Threads. User threads build frames and write them (write_mu_ serialises the
// writes so frames never interleave). One reader thread, owned here, reads
// frames and hands each reply to whoever waits for it:
//
//   request/reply (Hello, Ping, Subscribe, Unsubscribe, blocking publish):
//     the caller parks a Waiter, keyed by request id, and sleeps on its own
//     condition variable until the reader fills in the reply, the deadline
//     passes or the connection is lost.
//   pipelined publishes (publish_async): each frame is a PendingPublish keyed
//     by request id; its PublishAck runs the callback and releases the window.
//   deliveries: queued on the Consumer named by the frame's consumer id, where
//     Subscription::next() picks them up.
//   ConsumerClosed: marks that Consumer ended, with the broker's reason;
//     next() throws it once the queue is drained.
//
// Everything above is guarded by mu_. Callbacks run on the reader thread
// without mu_ held.
//
// Failure. The first failure (read error, EOF, a fatal Error frame, a failed
// write, close()) marks the connection closed, remembers why, shuts the socket
// down and wakes every waiter; from then on every call throws
// Error(kConnectionLost, reason). Shutting the socket down makes the reader
// thread's recv() return, and the reader then completes every unconfirmed
// publish with kConnectionLost, so callbacks always run on the reader thread
// and every publish_async() ends in exactly one callback.
//
// TLS (tls_stream.h). With ClientOptions asking for it, open() runs the
// handshake before the reader starts, and frames go through the TlsStream
// instead of send()/recv(); the rest of this page holds as it is.
//
// Lifetime. The socket descriptor is closed only in the destructor, which runs
// once neither the Client nor any Subscription holds the connection, so no
// thread can ever use a closed (and possibly reused) descriptor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "frame.h"
#include "tern/client.h"
#include "tls_stream.h"

namespace tern {

// What a request got back. Which fields are set depends on `type`.
struct Reply {
  wire::Body type = wire::Body::NONE;
  // Error frame (or kConnectionLost, filled in by the failure path).
  ErrorCode error = ErrorCode::kNone;
  std::string message;
  // HelloOk.
  uint32_t max_frame_bytes = 0;
  std::string server_name;
  // SubscribeOk.
  uint64_t consumer_id = 0;
  std::string subscription;
  // PublishAck of a single-message publish.
  PublishResult result;
  // TopicList.
  std::vector<TopicInfo> topics;
  // CreateTopicOk.
  bool created = false;
};

struct Client::Connection {
 public:
  // Connects the socket and starts the reader thread. Says nothing yet: the
  // Hello exchange is an ordinary call().
  static std::shared_ptr<Connection> open(const std::string& address,
                                          const ClientOptions& options);
  ~Connection();

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& address() const { return address_; }
  const ClientOptions& options() const { return options_; }
  uint64_t next_request_id() { return next_request_id_.fetch_add(1); }

  // The broker's limit on frames we send, from HelloOk. Set once by connect()
  // before the Client is handed out, read-only afterwards.
  uint32_t max_frame_bytes() const { return max_frame_bytes_; }
  void set_max_frame_bytes(uint32_t n) { max_frame_bytes_ = n; }

  // Sends one finished frame. Throws Error(kConnectionLost) if the connection
  // is closed or the write fails (which closes it).
  void send(const flatbuffers::FlatBufferBuilder& fbb);

  // Sends a request frame and waits for the reply with the same request id.
  // Returns it if its type is `expect`; throws the broker's Error,
  // Error(kTimeout) at `deadline`, Error(kConnectionLost) or, for a reply of
  // the wrong type, Error(kProtocol). `what` names the request in messages.
  Reply call(uint64_t request_id, wire::Body expect,
             const flatbuffers::FlatBufferBuilder& fbb, const char* what,
             std::chrono::steady_clock::time_point deadline);

  // publish_async(): waits for room in the window (throwing
  // Error(kConnectionLost) if the connection goes first), records the publish
  // and sends it.
  void publish_async(uint64_t request_id, size_t count,
                     const std::string& topic, ConfirmCallback on_confirm,
                     const flatbuffers::FlatBufferBuilder& fbb);
  void flush();
  size_t unconfirmed() const;

  // Consumers: created by the reader on SubscribeOk, so no delivery that
  // follows it can be missed; removed by forget_consumer(), which returns
  // false if the broker had already ended the consumer (ConsumerClosed), so
  // there is nothing to unsubscribe. An ended consumer stays here until
  // then, so that next() can hand out what it still holds and then say why
  // it ended; the broker never reuses a consumer id on a connection.
  std::optional<Message> next(uint64_t consumer_id,
                              std::chrono::milliseconds timeout);
  bool forget_consumer(uint64_t consumer_id);

  // Throws Error(kConnectionLost) if the connection is closed.
  void check_open() const;
  bool connected() const;
  // Closes the connection (idempotent) and waits for the reader to finish,
  // unless called from the reader thread itself (e.g. in a callback).
  void close();

 private:
  struct Waiter {
    wire::Body expect;
    std::condition_variable cv;
    bool done = false;
    Reply reply;
  };
  struct PendingPublish {
    size_t count;
    std::string topic;  // for error messages
    ConfirmCallback on_confirm;
  };
  struct Consumer {
    std::condition_variable cv;
    std::deque<Message> queue;
    bool detached = false;  // unsubscribed while someone waited in next()
    std::optional<Error> ended;  // ConsumerClosed: the broker's reason
  };

  Connection(std::string address, ClientOptions options, int fd,
             std::unique_ptr<net::TlsStream> tls);

  // Reader thread.
  void read_loop();
  void dispatch(const wire::Frame& frame);
  void on_reply(uint64_t request_id, wire::Body type, const Reply& reply);
  void on_subscribe_ok(const wire::SubscribeOk& ok);
  void on_publish_ack(const wire::PublishAck& ack);
  void on_error(const wire::Error& error);
  void on_deliver(const wire::Deliver& deliver);
  void on_consumer_closed(const wire::ConsumerClosed& closed);
  // Runs a finished publish's callback, then releases its window slots.
  void complete_publish(PendingPublish publish,
                        const std::vector<PublishResult>& results,
                        const std::string& error_message);
  void complete_all_publishes();
  void unsubscribe_orphan(uint64_t consumer_id);

  // Marks the connection closed with `reason` (the first reason wins), wakes
  // every waiter (with `code`: the broker's, when it said why) and shuts the
  // socket down. Any thread.
  void fail(const std::string& reason,
            ErrorCode code = ErrorCode::kConnectionLost);
  Error lost_error() const;  // requires mu_

  const std::string address_;
  const ClientOptions options_;
  const int fd_;
  const std::unique_ptr<net::TlsStream> tls_;  // null: plaintext
  uint32_t max_frame_bytes_ = frame::kDefaultMaxFrameBytes;
  std::atomic<uint64_t> next_request_id_{1};
  std::thread reader_;

  std::mutex write_mu_;  // held for the length of one frame's write
  std::mutex close_mu_;  // serialises close(), which joins the reader

  mutable std::mutex mu_;
  bool closed_ = false;
  std::string close_reason_;
  // A fatal Error the broker sent just before closing: the better reason.
  std::string broker_error_;
  std::unordered_map<uint64_t, Waiter*> waiters_;
  std::unordered_map<uint64_t, PendingPublish> publishes_;
  size_t unconfirmed_ = 0;
  std::condition_variable window_cv_;  // unconfirmed_ went down
  std::optional<Error> first_publish_error_;
  std::unordered_map<uint64_t, std::shared_ptr<Consumer>> consumers_;
};

// Publishes one message and waits (until `deadline`) for its confirm; throws
// like Client::publish. Shared by Client and Responder (client.cc).
PublishResult publish_message(Client::Connection& connection,
                              const std::string& topic,
                              const OutgoingMessage& message,
                              std::chrono::steady_clock::time_point deadline);

}  // namespace tern
