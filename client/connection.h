// Client::Connection — a Client's session with a broker, shared by the Client
// and its Subscriptions. It outlives the TCP connections (links) it runs on:
// with ClientOptions::reconnect, a lost link is replaced and the session goes
// on (keeper.cc).
//
// Threads.
//   user threads build frames and write them (write_mu_ serialises the writes
//     so frames never interleave);
//   one reader thread per link (connection_reader.cc) reads frames and hands
//     each reply to whoever waits for it;
//   one keeper thread (keeper.cc) sends heartbeats, notices a silent broker,
//     and after a lost link reconnects, logs in again, re-attaches the
//     consumers and re-sends what was not confirmed. It starts and joins the
//     readers, so there is at most one at a time.
//
//   request/reply (Ping, Subscribe, blocking publish, admin calls): the caller
//     parks a Waiter, keyed by request id, and sleeps on its own condition
//     variable until the reader fills in the reply, the deadline passes or the
//     session ends.
//   pipelined publishes (publish_async): each frame is a PendingPublish keyed
//     by request id, kept (with its bytes) until its PublishAck runs the
//     callback and releases the window.
//   deliveries: queued on the Consumer the frame's consumer id is attached to,
//     where Subscription::next() picks them up.
//   ConsumerClosed: marks that Consumer ended, with the broker's reason;
//     next() throws it once the queue is drained.
//
// Everything above is guarded by mu_. Callbacks run on the reader or keeper
// thread without mu_ held.
//
// A lost link (read error, EOF, a fatal Error frame, a failed write, no frame
// for two heartbeat intervals). Without reconnect, or after NotAuthorized or
// UnsupportedVersion, the session ends as close() ends it: it remembers why,
// wakes every waiter, and from then on every call throws
// Error(kConnectionLost, reason); every unconfirmed publish completes with
// kConnectionLost, so every publish_async() ends in exactly one callback.
// With reconnect, calls in flight that are safe to send again stay parked,
// the others (delete, reset, unsubscribe) fail with kConnectionLost, and new
// calls wait (until their deadline) for the keeper to bring a link up.
//
// Generations. Each link has a number; a consumer id is only meaningful on the
// link that gave it. Acks carry the generation their message came with and
// are dropped (never sent on a later link, where the id may name another
// consumer) if it is not the current one.
//
// Coalescing (coalescing.cc). Some frames are held back (held_) instead of
// written at once, and leave in the same write as the next frame anyone
// writes: every write takes the held frames first, so they keep their order.
//   publishes: a publish_async() frame made while the publisher is streaming
//     (it wrote less than 50 us ago) and 16 earlier publishes are unanswered.
//     The reader sends what is held once it has handled the frames of one
//     read, which brought that answer or others. So a publisher outpacing
//     the round trip sends its frames in a few large writes, while a lone or
//     paced publish goes out at once.
//   acks: Subscription::ack() adds its range to an open Ack (contiguous
//     ranges merge) for the same consumer; any other frame closes it. It
//     is held only while more deliveries wait in the consumer's queue (their
//     acks follow at once), and leaves with the next write, when next() is
//     about to wait, once the acks span 128 offsets, on close(), and at the
//     latest 1 ms after the first (the keeper sends it).
//
// TLS (tls_stream.h). With ClientOptions asking for it, each link runs the
// handshake before its reader starts, and frames go through the TlsStream
// instead of send()/recv(); the rest of this page holds as it is.
//
// Lifetime. A link's descriptor is closed only when the keeper replaces or
// drops the link, with write_mu_ and mu_ held and its reader joined, so no
// thread can ever use a closed (and possibly reused) descriptor. link_ changes
// only with both mutexes held; read it with either.
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
#include <utility>
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
  uint32_t heartbeat_ms = 0;
  // SubscribeOk.
  uint64_t consumer_id = 0;
  std::string subscription;
  // ResetOk's offset; the one result of a single-message publish.
  PublishResult result;
  // PublishAck: every result (a Transaction has one per message of every
  // part).
  std::vector<PublishResult> results;
  // TopicList.
  std::vector<TopicInfo> topics;
  // CreateTopicOk.
  bool created = false;
};

struct Client::Connection {
 public:
  // Connects, logs in (Hello) and starts the keeper: throws
  // Error(kConnectFailed), or the broker's refusal (e.g. kNotAuthorized).
  static std::shared_ptr<Connection> open(const std::string& address,
                                          const ClientOptions& options);
  ~Connection();

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& address() const { return address_; }
  const ClientOptions& options() const { return options_; }
  uint64_t next_request_id() { return next_request_id_.fetch_add(1); }
  // De-duplication of re-sent publishes (Publish.producer, .sequence): this
  // session's producer, random and never 0, and `count` sequence numbers of
  // its own, the first returned.
  uint64_t producer() const { return producer_; }
  uint64_t take_sequences(size_t count) {
    return next_sequence_.fetch_add(count);
  }

  // The broker's limit on frames we send, from HelloOk.
  uint32_t max_frame_bytes() const { return max_frame_bytes_.load(); }

  // Sends one finished frame on the current link, waiting (up to
  // options().timeout) while reconnecting. With `generation`, only on that
  // link: dropped silently if it is gone. Throws Error(kConnectionLost) if the
  // session ended, or if the write fails and `generation` is 0.
  void send(const flatbuffers::FlatBufferBuilder& fbb, uint64_t generation = 0);

  // Whether a call may be sent again on a new link if the old one was lost
  // before its reply: true for idempotent requests (a publish has its id).
  enum class Resend { kSafe, kNever };

  // Sends a request frame and waits for the reply with the same request id.
  // Returns it if its type is `expect`; throws the broker's Error,
  // Error(kTimeout) at `deadline`, Error(kConnectionLost) or, for a reply of
  // the wrong type, Error(kProtocol). `what` names the request in messages.
  // `consumer` (Subscribe only) is attached when SubscribeOk arrives. With
  // `generation`, only on that link (else kConnectionLost at once).
  Reply call(uint64_t request_id, wire::Body expect,
             const flatbuffers::FlatBufferBuilder& fbb, const char* what,
             std::chrono::steady_clock::time_point deadline,
             Resend resend = Resend::kSafe, uint64_t generation = 0);

  // publish_async(): waits for room in the window (throwing
  // Error(kConnectionLost) if the session ends, or stays down past the
  // timeout, first), records the publish and sends it (or leaves it to the
  // keeper, while reconnecting).
  void publish_async(uint64_t request_id, size_t count,
                     const std::string& topic, ConfirmCallback on_confirm,
                     flatbuffers::FlatBufferBuilder& fbb);
  void flush();
  size_t unconfirmed() const;

  // Consumers, by a local id that stays the same across reconnects.
  // subscribe() sends the Subscribe and waits; the reader attaches the
  // consumer on SubscribeOk, before the next frame is read, so no delivery
  // that follows it can be missed. forget_consumer() removes it and returns
  // the broker's consumer id and generation to unsubscribe, or 0 if there is
  // nothing to unsubscribe (ended by the broker, or not attached now). An
  // ended consumer stays until then, so that next() can hand out what it
  // still holds and then say why it ended.
  uint64_t subscribe(const SubscribeOptions& options, std::string* name);
  std::optional<Message> next(uint64_t consumer,
                              std::chrono::milliseconds timeout);
  std::pair<uint64_t, uint64_t> forget_consumer(uint64_t consumer);
  // Where to send an Ack of a message of link `generation` (0: the current
  // one) for `consumer`: {broker consumer id, generation}, or {0, 0} to drop.
  std::pair<uint64_t, uint64_t> route(uint64_t consumer, uint64_t generation);
  // Acks [first, last] of `consumer`, delivered on link `generation` (0: the
  // current one): held (see Coalescing), or dropped if that link is gone.
  // `topic` only for a wildcard consumer.
  void ack(uint64_t consumer, uint64_t generation, uint64_t first,
           uint64_t last, const std::string& topic);

  // Temporary topics are re-created after a reconnect (they end with a link).
  void remember_temporary(const std::string& name,
                          const flatbuffers::FlatBufferBuilder& create);
  void forget_temporary(const std::string& name);

  // Throws Error(kConnectionLost) if the session ended.
  void check_open() const;
  // Whether a link is up (false while reconnecting, and once ended).
  bool connected() const;
  // Ends the session (idempotent) and waits for its threads, unless called
  // from one of them (e.g. in a callback).
  void close();

 private:
  // One TCP (TLS) connection and its reader thread.
  struct Link {
    Link(int fd, std::unique_ptr<net::TlsStream> tls);
    ~Link();  // closes the descriptor
    const int fd;
    std::unique_ptr<net::TlsStream> tls;  // null: plaintext
    uint64_t generation = 0;
    std::thread reader;
    // Why it was failed from outside (heartbeat, write), or the fatal Error
    // the broker sent before closing: better reasons than "closed by the
    // broker". Under mu_.
    std::string reason;
    ErrorCode code = ErrorCode::kConnectionLost;
  };
  struct Consumer {
    uint64_t id;               // local
    SubscribeOptions options;  // to attach again after a reconnect
    uint64_t broker_id = 0;    // on link `generation`; 0: not attached
    uint64_t generation = 0;
    uint64_t next_offset = 0;  // one past the last delivered (ephemeral)
    std::condition_variable cv;
    std::deque<Message> queue;
    bool detached = false;       // unsubscribed while someone waited in next()
    std::optional<Error> ended;  // ConsumerClosed: the broker's reason
  };
  struct Waiter {
    wire::Body expect;
    std::condition_variable cv;
    bool done = false;
    Reply reply;
    Resend resend = Resend::kSafe;
    bool internal = false;  // the keeper's own (Hello, re-subscribe)
    uint64_t sent_on = 0;   // generation it was (maybe) written on
    const flatbuffers::FlatBufferBuilder* frame = nullptr;  // caller's
    std::shared_ptr<Consumer> consumer;  // Subscribe: attached on SubscribeOk
  };
  struct PendingPublish {
    size_t count;
    std::string topic;  // for error messages
    ConfirmCallback on_confirm;
    // The frame, kept to send it again on a new link.
    std::shared_ptr<flatbuffers::DetachedBuffer> frame;
  };

  Connection(std::string address, ClientOptions options);
  // call() with a waiter of the caller's (Subscribe adds its consumer).
  Reply call_with(Waiter& waiter, uint64_t request_id,
                  const flatbuffers::FlatBufferBuilder& fbb, const char* what,
                  std::chrono::steady_clock::time_point deadline,
                  uint64_t generation);

  // --- reader thread (connection_reader.cc) ---
  void read_loop(Link& link);
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

  // --- keeper thread (keeper.cc) ---
  void keep();
  void heartbeat();
  // One attempt to bring a link up: connect, Hello, re-create temporary
  // topics, re-attach consumers, re-send. Throws what failed.
  void reconnect();
  std::unique_ptr<Link> connect_link(
      std::chrono::steady_clock::time_point deadline);
  Reply hello(uint64_t generation,
              std::chrono::steady_clock::time_point deadline);
  void resubscribe(uint64_t generation,
                   const std::shared_ptr<Consumer>& consumer,
                   std::chrono::steady_clock::time_point deadline);
  void resend_pending(uint64_t generation);
  // The keeper's own request on link `generation` (while no user call may
  // write): waits for the reply, which may be an Error; throws kTimeout.
  Reply keeper_call(uint64_t request_id, wire::Body expect, const uint8_t* data,
                    size_t size, uint64_t generation,
                    std::chrono::steady_clock::time_point deadline,
                    std::shared_ptr<Consumer> consumer = nullptr);
  // The reader of link `generation` ended: `reason` says why. Ends the session
  // or hands the loss to the keeper.
  void link_lost(uint64_t generation, const std::string& reason,
                 ErrorCode code);
  // Shuts link `generation` down (0: the current one) so its reader ends,
  // remembering `reason` as why. Any thread.
  void fail_link(uint64_t generation, const std::string& reason);

  // Writes a frame on link `generation` (under write_mu_), after the held
  // ones. False if that link is gone or the write failed (which fails the
  // link).
  bool write_frame(const uint8_t* data, size_t size, uint64_t generation,
                   std::string* error = nullptr);
  // The same with write_mu_ held; a failure is left in *failure for the
  // caller to fail the link with once it lets go of write_mu_. Without
  // `held`, the held frames stay (the keeper re-sends older frames first).
  bool write_locked(const uint8_t* data, size_t size, uint64_t generation,
                    std::string* failure, bool held = true);
  // --- coalescing.cc ---
  // Holds a publish_async() frame back (see Coalescing); false: write it
  // now. Requires mu_, before the publish joins publishes_.
  bool hold_publish(const flatbuffers::DetachedBuffer& frame);
  // Closes the open Ack: its frame joins held_. Requires held_mu_.
  void seal_ack_locked();
  // Writes the held frames and the open Ack, if any, on link `generation`.
  void send_held(uint64_t generation);
  // Held acks leave at the latest this long after the first.
  static constexpr int64_t kAckDelayNs = 1000 * 1000;
  // The consumer with local id `consumer` (requires mu_); throws if it is
  // gone or the session ended. route_of: route() for it.
  const Consumer& consumer_locked(uint64_t consumer) const;
  static std::pair<uint64_t, uint64_t> route_of(const Consumer& consumer,
                                                uint64_t generation);
  // Waits (lock holds mu_) until a link is up: its generation, or throws.
  uint64_t wait_for_link(std::unique_lock<std::mutex>& lock,
                         std::chrono::steady_clock::time_point deadline);
  // Ends the session: marks it closed with `reason` and wakes every waiter
  // (with `code`). Requires mu_.
  void end_locked(const std::string& reason, ErrorCode code);
  Error lost_error() const;  // requires mu_
  void set_heard_from_broker();

  const std::string address_;
  const ClientOptions options_;
  const uint64_t producer_;
  std::atomic<uint64_t> next_sequence_{0};
  std::atomic<uint32_t> max_frame_bytes_{frame::kDefaultMaxFrameBytes};
  std::atomic<uint64_t> next_request_id_{1};
  // Heartbeats: the interval in force (ms, 0: none) and, in steady-clock
  // nanoseconds, when we last wrote and last read a frame.
  std::atomic<uint32_t> heartbeat_ms_{0};
  std::atomic<int64_t> last_write_ns_{0};
  std::atomic<int64_t> last_read_ns_{0};
  std::thread keeper_;

  std::mutex write_mu_;  // held for the length of one write
  std::string writing_;  // under write_mu_: held frames plus the one written

  // Coalescing: frames held back, all for the current link (cleared with
  // it), and how many of publishes_ they are; the open Ack. Taken inside mu_
  // or write_mu_.
  std::mutex held_mu_;
  std::string held_;
  size_t held_publishes_ = 0;
  struct OpenAck {
    uint64_t consumer = 0;  // the broker's id, on the current link
    std::string topic;      // a wildcard consumer's
    std::vector<wire::OffsetRange> ranges;  // empty: none open
    uint64_t offsets = 0;                   // how many the ranges span
  } open_ack_;
  flatbuffers::FlatBufferBuilder ack_fbb_;
  // When the oldest ack not yet written was made (steady ns; 0: none).
  std::atomic<int64_t> acks_since_ns_{0};
  std::mutex close_mu_;  // serialises close(), which joins the keeper

  mutable std::mutex mu_;
  std::unique_ptr<Link> link_;       // null while reconnecting
  uint64_t generation_ = 0;          // link_'s
  bool up_ = false;                  // link_ is logged in and re-attached
  bool link_down_ = false;           // link_'s reader ended: the keeper's turn
  std::condition_variable link_cv_;  // up_ or closed_ changed
  std::condition_variable keeper_cv_;  // link_down_, closed_, acks to time
  bool keeper_times_acks_ = false;     // it wakes for held acks by itself
  bool closed_ = false;
  std::string close_reason_;
  std::string down_reason_;  // why the last link was lost
  ErrorCode down_code_ =
      ErrorCode::kConnectionLost;  // the broker's, if it said
  std::unordered_map<uint64_t, Waiter*> waiters_;
  std::unordered_map<uint64_t, PendingPublish> publishes_;
  size_t unconfirmed_ = 0;
  std::condition_variable window_cv_;  // unconfirmed_ went down
  std::optional<Error> first_publish_error_;
  uint64_t next_consumer_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Consumer>> consumers_;  // local
  std::unordered_map<uint64_t, std::shared_ptr<Consumer>>
      attached_;  // broker id
  std::unordered_map<std::string, std::string>
      temporary_;  // name -> CreateTopic
};

// 16 random hex digits (connection.cc).
std::string random_hex16();

// The steady clock in nanoseconds: what the timestamps of writes, reads and
// held acks hold.
inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The Subscribe frame for `options` (client.cc).
void build_subscribe(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                     const SubscribeOptions& options);

// Publishes one message and waits (until `deadline`) for its confirm; throws
// like Client::publish. Shared by Client and Responder (client.cc).
PublishResult publish_message(Client::Connection& connection,
                              const std::string& topic,
                              const OutgoingMessage& message,
                              std::chrono::steady_clock::time_point deadline);

}  // namespace tern
