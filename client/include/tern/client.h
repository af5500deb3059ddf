// tern::Client — the C++ client for the Tern message broker.
//
// One Client is one session with a broker, over one TCP connection at a time.
// It is safe to use from several threads: publishing, subscribing and acking
// may happen concurrently. Two background threads owned by the Client: one
// reads frames from the broker, wakes whoever waits for a reply, and queues
// deliveries for their Subscription; one sends heartbeats and reconnects.
//
// Errors are reported one way everywhere: by throwing tern::Error, whose code()
// says what went wrong.
//
// Reconnects (ClientOptions::reconnect, on by default). When the connection
// is lost (the broker stopped, crashed or went silent past the heartbeat),
// the Client connects again with the same options (TLS, credentials), with
// jittered exponential backoff, until it succeeds or is closed, and then:
//   - calls made meanwhile wait, each up to options.timeout, and then throw
//     Error(kConnectionLost) saying it is still reconnecting;
//   - publishes not yet confirmed are sent again. Each publish frame carries
//     this Client's producer number and its messages' sequence numbers
//     (a message with an OutgoingMessage::id is known by its id instead), so
//     the broker's de-duplication keeps a message stored before the loss from
//     being stored twice: nothing
//     confirmed is lost, nothing is stored twice — as long as the Client is
//     back within the broker's de-duplication window (--dedupe-window, 2 min
//     by default); a message re-sent later could be stored twice. A re-sent
//     message the broker had stored says duplicate = true, with its offset.
//     Each publish_async() still ends in exactly one callback;
//   - requests in flight that are safe to repeat (subscribe, ping, topics,
//     create_topic, alter_topic) are sent again; delete_topic,
//     delete_subscription and reset_subscription throw kConnectionLost (they
//     may or may not have been done); so does unsubscribe, whose consumer
//     ended with the connection anyway;
//   - Subscriptions go on: durable ones resume at their cursor, and what
//     was delivered but not acked comes again (queued copies are dropped).
//     Acks of messages from the lost connection are dropped: an ack may be
//     lost with the connection, so its message may come again — delivery is
//     at least once. An ephemeral subscription resumes right after the last
//     message it received (a pattern one, or one that received nothing, at
//     the latest message, missing what was published meanwhile);
//   - temporary topics (request()'s inbox) are created again, empty: a reply
//     sent while the Client was away is lost, and its request() times out.
// NotAuthorized and UnsupportedVersion end the Client instead, as does any
// loss with reconnect off; from then on every call throws
// Error(kConnectionLost), and a new Client is needed.
//
// What that costs the broker: one small record per publish frame (one per
// run of frames while the Client publishes alone to a topic), kept for the
// de-duplication window; each counts against --max-dedupe-ids (10 million
// by default, over all topics).
//
//   auto client = tern::Client::connect("127.0.0.1:7411");
//   uint64_t offset = client->publish("orders", "hello");      // confirmed
//
//   tern::SubscribeOptions options;
//   options.topic = "orders";
//   options.subscription = "billing";
//   options.start = tern::StartPosition::kEarliest;
//   auto sub = client->subscribe(options);
//   while (auto m = sub.next(std::chrono::seconds(5))) {
//     handle(m->payload);
//     sub.ack(*m);
//   }
//
// Request/reply is built on the same topics (see Client::request and
// Client::respond):
//
//   auto responder = client->respond("prices", [](const tern::Message& m) {
//     return lookup(m.payload);
//   });
//   while (running) responder.serve_one(std::chrono::seconds(1));
//
//   tern::Message reply = other->request("prices", "AAPL",
//                                        std::chrono::seconds(5));
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tern/message.h"

namespace tern {

enum class StartPosition {
  kLatest,    // messages committed from now on
  kEarliest,  // the oldest stored message
  kOffset,    // SubscribeOptions::start_offset
  kTime,      // the first message appended at or after start_time
};

struct SubscribeOptions {
  std::string topic;
  // Durable subscription name. Empty: an ephemeral subscription that ends
  // with this consumer.
  std::string subscription;
  // Where a new subscription starts (ephemeral ones too); an existing durable
  // one resumes at its cursor.
  StartPosition start = StartPosition::kLatest;
  uint64_t start_offset = 0;                        // with kOffset
  std::chrono::system_clock::time_point start_time;  // with kTime
  // Max unacked messages in flight to this consumer.
  uint32_t prefetch = 1000;
  // Unacked messages are redelivered after this long. 0: broker default (30 s).
  std::chrono::milliseconds ack_timeout{0};
  // A message delivered this many times without an ack goes to the
  // dead-letter topic instead of being delivered again. 0: unlimited.
  uint32_t max_deliveries = 16;
  // Where given-up messages go, with headers tern-dlq-topic,
  // tern-dlq-subscription, tern-dlq-offset, tern-dlq-attempts and
  // tern-dlq-reason. Empty: "<topic>.dlq".
  std::string dead_letter_topic;
  // Backoff: after delivery n failed (its ack timeout passed, or a nack
  // without a delay of its own), the message is delivered again after
  // retry_delays[n-1], the last one repeating; {0ms}: at once. Empty: the
  // subscription's own (a new one: the broker's --retry-delays, 100ms, 1s,
  // 5s, 30s by default). Kept with a durable subscription.
  std::vector<std::chrono::milliseconds> retry_delays;
};

struct ClientOptions {
  std::string client_name = "tern-cpp";
  // Credentials, for a broker with users: a wrong or missing one makes
  // connect() throw Error(kNotAuthorized). A user logs in with its password,
  // or with a token (the user may then be left empty), or, under mutual TLS,
  // with its client certificate alone. Without TLS they travel in clear
  // text: use them on loopback or a trusted network only.
  std::string user;
  std::string password;
  std::string token;
  // publish_async() blocks while this many messages await their confirm.
  size_t max_unconfirmed = 1000;
  // Applies to connecting and to every call that waits for a reply.
  std::chrono::milliseconds timeout{10000};
  uint32_t max_frame_bytes = 16u << 20;

  // TLS. On with `tls`, or with any of the files below set: the connection
  // is encrypted (TLS 1.2 or later) and the broker's certificate must be
  // signed by a CA in `tls_ca_file` (PEM; empty: the system's trust store)
  // and name `tls_server_name` (empty: the host of the address, a DNS name
  // or an IP address). A failed handshake makes connect() throw
  // Error(kConnectFailed) saying why, e.g. "TLS handshake failed:
  // certificate verify failed (unable to get local issuer certificate)".
  bool tls = false;
  std::string tls_ca_file;
  // Mutual TLS: this client's certificate (PEM, chain included) and key.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;

  // Heartbeats (see PROTOCOL.md): asked for in Hello. The client sends a Ping
  // whenever it has sent nothing for this long, and gives the connection up
  // ("no frame from the broker for N ms: it stopped or is unreachable") when
  // nothing arrived for two intervals, so a dead or frozen broker is noticed
  // within about 2x this instead of blocking. The broker in turn closes a
  // client silent for two intervals. 0: none.
  std::chrono::milliseconds heartbeat{3000};

  // Reconnecting. After a lost connection (not after close(), and not after
  // NotAuthorized or UnsupportedVersion, which a new attempt would not
  // change) the client connects again, for as long as it lives, waiting
  // between attempts a random time between half and all of a delay that
  // starts at reconnect_min_delay and doubles up to reconnect_max_delay.
  // Each attempt has options.timeout to connect and log in. See "Reconnects"
  // at Client for what carries over. false: the first lost connection ends
  // the Client, and every call then throws Error(kConnectionLost).
  bool reconnect = true;
  std::chrono::milliseconds reconnect_min_delay{100};
  std::chrono::milliseconds reconnect_max_delay{5000};
};

// What the broker reports about a subscription (Client::topics()).
struct SubscriptionInfo {
  std::string name;  // empty: an ephemeral subscription
  uint32_t consumers = 0;
  uint64_t ack_floor = 0;  // every offset below is acked
  uint64_t lag = 0;        // committed messages not acked yet
  uint32_t pending = 0;    // delivered, waiting for an ack
  uint32_t waiting_redelivery = 0;
  uint32_t ack_timeout_ms = 0;
  uint32_t max_deliveries = 0;
  std::string dead_letter_topic;
  // Messages retention removed before this subscription acked them (since
  // the broker started).
  uint64_t skipped = 0;
  // Messages given up on that cannot be dead-lettered now (e.g. the
  // dead-letter topic cannot be created): held back, never delivered again,
  // retried every second; dead_letter_error says why.
  uint32_t dead_letter_blocked = 0;
  std::string dead_letter_error;
  std::vector<uint32_t> retry_delays_ms;  // the backoff (SubscribeOptions)
};

// Retention and expiry of a topic, enforced by the broker. Zero / false: no
// limit. The limits are checked together: a message goes once any of them
// says so.
struct TopicSettings {
  // Messages appended longer ago are deleted.
  std::chrono::milliseconds max_age{0};
  // The oldest messages are deleted to keep the stored records under this
  // many bytes.
  uint64_t max_bytes = 0;
  // The oldest messages are deleted to keep at most this many.
  uint64_t max_messages = 0;
  // A message is deleted once every durable subscription has acked it.
  bool work_queue = false;
  // Messages whose TTL expires go to the dead-letter topic instead of
  // silently counting as done.
  bool dead_letter_expired = false;

  bool operator==(const TopicSettings& o) const {
    return max_age == o.max_age && max_bytes == o.max_bytes &&
           max_messages == o.max_messages && work_queue == o.work_queue &&
           dead_letter_expired == o.dead_letter_expired;
  }
  bool operator!=(const TopicSettings& o) const { return !(*this == o); }
};

struct TopicInfo {
  std::string name;
  uint64_t first_offset = 0;  // lowest offset stored
  uint64_t next_offset = 0;   // offset of the next message
  std::vector<SubscriptionInfo> subscriptions;
  TopicSettings settings;
  uint64_t messages = 0;  // messages stored
  uint64_t bytes = 0;     // bytes of their stored records
  // The space they take on disk, as the broker's RocksDB estimates it.
  // Retention's removals count until the removed range is compacted.
  uint64_t disk_bytes = 0;
  // Its records the broker holds in memory (its tail and what it read back
  // for consumers behind it), within the broker's --memory-budget.
  uint64_t memory_bytes = 0;
  // Scheduled messages stored, to be appended when due (OutgoingMessage::
  // delay).
  uint64_t scheduled = 0;
  // Deleted when the connection that created it ends (see create_topic()).
  bool temporary = false;
};

class Subscription;
class Responder;

class Client {
 public:
  using ConfirmCallback = std::function<void(const std::vector<PublishResult>&)>;

  // Connects to "HOST:PORT" and says Hello. Throws Error(kConnectFailed) if
  // the broker cannot be reached or does not answer within options.timeout.
  static std::unique_ptr<Client> connect(const std::string& address,
                                         ClientOptions options = {});
  ~Client();  // closes the connection; pending waits throw kConnectionLost

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Publishes one message and waits for its confirm: when this returns, the
  // message is durable (per the broker's fsync policy). Returns its offset.
  uint64_t publish(const std::string& topic, std::string payload,
                   std::vector<Header> headers = {});

  // The same for a message with a key, id or ttl. Returns its offset, and
  // whether it was a duplicate of an earlier message with the same id.
  PublishResult publish(const std::string& topic,
                        const OutgoingMessage& message);

  // Publishes to several topics at once: every message of every part is
  // stored in one commit, or none is (a crash, a failed write or any
  // refusal — a bad topic, a limit, a permission — leaves nothing of it).
  // Waits for the confirm and returns every message's result, parts in
  // order. Throws Error if nothing was stored. De-duplication by id and
  // (with reconnect) by sequence applies per topic, as for publish(): a
  // re-sent request whose first try was stored comes back all duplicates.
  std::vector<PublishResult> publish_atomic(
      const std::vector<TopicMessages>& parts);

  // Acks `inputs` (messages `from` delivered) and publishes `parts`, in one
  // commit: after a crash either both happened or neither (the inputs are
  // then delivered again and nothing of the parts was stored). A processor
  // from topic A to topic B that uses it gets each input's output into B
  // exactly once. Throws Error(kNotHeld) if an input is not the consumer's
  // any more (its ack timeout passed, or it came on an earlier connection):
  // nothing happened, and it is delivered again. Unlike other calls it is
  // not sent again after a reconnect: kConnectionLost means the outcome is
  // unknown, and the inputs come again if it was not committed.
  std::vector<PublishResult> consume_and_publish(
      Subscription& from, const std::vector<Message>& inputs,
      const std::vector<TopicMessages>& parts);

  // Pipelined publishing: sends `messages` (one frame) and returns without
  // waiting for the confirm, unless max_unconfirmed messages are already
  // unconfirmed, in which case it blocks until there is room (while
  // reconnecting, at most options.timeout). `on_confirm`, if given, runs once
  // on one of the client's threads (the reader's, or after close() the
  // reconnecting one's) with one result per message. A frame published
  // within 50 us of the client's last write, while 16 earlier publishes are
  // unanswered, is held and sent with the next write or once answers come:
  // a fast loop sends its frames in a few large writes. `messages` is only
  // read (encoded into the frame): a call that throws leaves it to the
  // caller, e.g. to try again.
  void publish_async(const std::string& topic,
                     const std::vector<OutgoingMessage>& messages,
                     ConfirmCallback on_confirm = nullptr);

  // Sends `messages` (one frame) without asking for a confirm and returns.
  // Nothing says whether they were stored: an error the broker reports about
  // the frame is dropped, and the window does not apply. For load generation
  // and fire-and-forget data.
  void publish_unconfirmed(const std::string& topic,
                           const std::vector<OutgoingMessage>& messages);

  // Waits until every publish_async() so far is confirmed. Throws the first
  // error any of them got since the last flush(), or Error(kConnectionLost)
  // if the client stays disconnected for options.timeout while waiting.
  void flush();

  // Messages published with publish_async() and not yet confirmed.
  size_t unconfirmed() const;

  // Subscribes and returns once the broker has confirmed the subscription.
  Subscription subscribe(const SubscribeOptions& options);

  // Round trip to the broker; returns the time it took.
  std::chrono::microseconds ping();

  // Moves the existing durable subscription `options.subscription` on
  // `options.topic` to `options.start` (with start_offset / start_time):
  // everything before counts as acked, everything after as not yet
  // delivered. Returns the offset it now starts at.
  uint64_t reset_subscription(const SubscribeOptions& options);

  // Every topic with its subscriptions, or only the one named (an empty
  // result if it does not exist).
  std::vector<TopicInfo> topics(const std::string& name = "");

  // Creates topic `name` with `settings` (publishing and subscribing create
  // topics too, without settings). Returns true if it was created, false if
  // it already existed with the same settings; other settings throw
  // Error(kTopicExists). A `temporary` topic is deleted, with its messages
  // and subscriptions, when this Client's connection ends; names starting
  // "_inbox." may only be used for temporary topics.
  bool create_topic(const std::string& name,
                    const TopicSettings& settings = {},
                    bool temporary = false);

  // Replaces the retention limits (and dead_letter_expired) of the existing
  // topic `name`; the broker applies them within a retention interval.
  // `work_queue` must be what the topic was created with. Throws
  // Error(kUnknownTopic), or Error(kInvalidTopic) for a temporary topic or a
  // changed work_queue.
  void alter_topic(const std::string& name, const TopicSettings& settings);

  // Deletes a topic with its messages and subscriptions. Its consumers, on
  // any connection, end: their next() throws Error(kDeleted) once they have
  // handed out what they had already received. Throws Error(kUnknownTopic)
  // if there is no such topic.
  void delete_topic(const std::string& name);

  // Deletes the durable subscription `name` of `topic` and its position. Its
  // consumers end as with delete_topic(). Throws Error(kUnknownTopic) or
  // Error(kUnknownSubscription).
  void delete_subscription(const std::string& topic, const std::string& name);

  // Request/reply: publishes `payload` to `topic` as a request and waits for
  // the reply a Responder (or anyone honouring the headers) sends back.
  //
  // On first use the Client creates a temporary inbox topic
  // "_inbox.<16 random hex digits>" and one ephemeral subscription on it,
  // both kept until the Client closes. Each request carries the headers
  // tern-reply-to (the inbox) and tern-correlation-id, and a ttl of
  // `timeout`, so a request nobody took in time is never delivered later.
  // Replies are acked as they arrive; late replies to requests that already
  // timed out are dropped. Safe to call from several threads at once.
  //
  // Throws Error(kTimeout) if no reply arrives within `timeout`,
  // Error(kRemoteError) if the responder failed (its reply carries
  // tern-error), Error(kInvalidArgument) if `headers` holds one of the
  // tern- headers above, and whatever publishing throws.
  Message request(const std::string& topic, std::string payload,
                  std::chrono::milliseconds timeout,
                  std::vector<Header> headers = {});

  // The other side of request(): a Responder answering the requests
  // published to `topic`. It attaches to the durable subscription
  // `subscription`, so several responders with the same name share the
  // requests between them, and requests wait in the topic while none runs
  // (a new subscription starts at the earliest message; requests that
  // timed out meanwhile have expired and are skipped).
  using RequestHandler = std::function<std::string(const Message& request)>;
  Responder respond(const std::string& topic, RequestHandler handler,
                    const std::string& subscription = "responders");

  void close();
  // Whether the connection is up now: false while reconnecting, and after
  // close() or a loss the Client does not come back from.
  bool connected() const;

  struct Connection;  // shared with Subscription; defined in the .cc

 private:
  struct Inbox;  // request()'s reply topic and waiters, in request.cc

  explicit Client(std::shared_ptr<Connection> connection);
  std::shared_ptr<Inbox> inbox();
  // One Transaction: `parts`, and acks of `inputs` if `from` is given.
  std::vector<PublishResult> transact(const std::vector<TopicMessages>& parts,
                                      Subscription* from,
                                      const std::vector<Message>& inputs);

  std::shared_ptr<Connection> connection_;
  std::mutex inbox_mu_;  // guards creating inbox_
  std::shared_ptr<Inbox> inbox_;  // made by the first request()
};

// One consumer attached to a subscription. Move-only; unsubscribes when
// destroyed (unacked messages are then redelivered to other consumers).
class Subscription {
 public:
  Subscription(Subscription&&) noexcept;
  Subscription& operator=(Subscription&&) noexcept;
  ~Subscription();

  // The next delivered message, or nullopt if none arrives within `timeout`.
  // If the broker ended this consumer (its topic or subscription was
  // deleted), the messages that had arrived are still handed out, then
  // next() throws the broker's reason, e.g. Error(kDeleted).
  std::optional<Message> next(std::chrono::milliseconds timeout);

  // Acks on the connection that delivered `message`; after a reconnect an
  // ack of an earlier delivery is dropped (the broker delivers it again).
  // An ack made while more deliveries are queued is merged with the next
  // ones into ranges and sent with them: with the next frame the client
  // writes (a nack, a publish, a ping...), when next() is about to wait,
  // once they span 128 offsets, on close(), and at the latest 1 ms after
  // the first. With nothing queued it is sent at once.
  void ack(const Message& message);
  // By offset (on the current connection): not for a wildcard subscription (its
  // topics' offsets overlap); those throw kInvalidArgument.
  void ack(uint64_t offset) { ack_range(offset, offset); }
  void ack_range(uint64_t first, uint64_t last);  // inclusive

  // Whether topic() is a pattern ("orders.*", "orders.>"): messages then
  // come from every matching topic, and Message::topic says which.
  bool wildcard() const;

  // Hands a message back: it is delivered again (to any consumer of the
  // subscription) after `delay`, with its attempt number one higher.
  void nack(const Message& message,
            std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  // Gives up on a message: it goes to the dead-letter topic and counts as
  // done for the subscription.
  void reject(const Message& message);

  // Detaches from the subscription; a durable subscription keeps its state.
  void unsubscribe();

  // The client's own id for this consumer, the same across reconnects (the
  // broker's changes with each connection).
  uint64_t consumer_id() const { return consumer_id_; }
  const std::string& topic() const { return topic_; }
  const std::string& name() const { return name_; }

 private:
  friend class Client;
  Subscription(std::shared_ptr<Client::Connection> connection,
               uint64_t consumer_id, std::string topic, std::string name);
  // Sends an Ack or Nack of [first, last]; `topic` only for a wildcard.
  // `generation`: the message's (0: the current connection's).
  void settle(uint64_t first, uint64_t last, const std::string& topic, bool ack,
              uint32_t delay_ms = 0, bool dead_letter = false,
              uint64_t generation = 0);

  std::shared_ptr<Client::Connection> connection_;
  uint64_t consumer_id_ = 0;
  std::string topic_;
  std::string name_;
};

// Answers requests (see Client::respond). Move-only; stops taking requests
// when destroyed. Keeps the connection alive, like a Subscription.
//
// For each request, serve_one() runs the handler and publishes what it
// returns to the request's tern-reply-to topic with the request's
// tern-correlation-id (and its trace, as a child: TraceContext), then acks
// the request. So a responder that dies
// mid-request leaves it to be redelivered to another one (the reply may
// then come twice; request() takes the first).
//
//   - A handler that throws is answered with header tern-error (its what())
//     and an empty payload; request() throws Error(kRemoteError).
//   - A message without tern-reply-to is not a request: it is acked and
//     ignored.
//   - If the reply topic is gone (the requester closed, so its inbox was
//     deleted), the request is acked all the same: nobody waits for it.
class Responder {
 public:
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&&) noexcept = default;

  // Waits up to `timeout` for one request and answers it. Returns true if
  // it answered one, false if none came (or only messages that are not
  // requests). Throws if taking the request or publishing the reply fails.
  // Call it in a loop; not meant to be called from several threads at once
  // (make one Responder per thread instead).
  bool serve_one(std::chrono::milliseconds timeout);

  const std::string& topic() const { return requests_.topic(); }

 private:
  friend class Client;
  Responder(std::shared_ptr<Client::Connection> connection,
            Subscription requests, Client::RequestHandler handler);

  std::shared_ptr<Client::Connection> connection_;
  Subscription requests_;
  Client::RequestHandler handler_;
};

}  // namespace tern
