// Session: the protocol, as seen from one connection. Takes each verified
// frame, checks it is allowed now (Hello first, only client frames), and
// turns it into a broker operation: publish, subscribe, ack, unsubscribe.
// Owns the connection's consumers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "broker.h"
#include "consumer.h"
#include "tern_generated.h"

namespace tern {

class Connection;
class Topic;

class Session {
 public:
  Session(Broker& broker, Connection& connection);

  // `bytes`: the frame's length.
  void on_frame(const wire::Frame& frame, uint32_t bytes);
  // Whether the client has said Hello (it must within --hello-timeout), and
  // logged in if the broker has users.
  bool greeted() const { return greeted_; }
  // Answers its Hello with HelloOk: from here on it may send anything.
  void greet(uint64_t request_id);
  // The connection is closing: detach every consumer, so that what they had
  // not acked goes to the subscription's other consumers.
  void end();
  // A write completed: deliveries paused for congestion may go on.
  void on_drained();
  // The broker ends `consumer` (its subscription is being deleted): it is
  // detached and destroyed, and the client is told why.
  void close_consumer(Consumer& consumer, wire::ErrorCode code,
                      const std::string& why);
  // Attaches wildcard consumer `consumer_id` to `topic`, which its pattern
  // matches; false and *refusal if the subscription cannot be made.
  bool attach_wildcard(uint64_t consumer_id, Topic& topic, Refusal* refusal);
  // Ends wildcard consumer `consumer_id`, which could not attach to a
  // matching topic: it would miss that topic's messages without a word. The
  // client gets ConsumerClosed with the refusal.
  void close_wildcard(uint64_t consumer_id, const Refusal& refusal);

 private:
  void on_hello(const wire::Hello& hello);
  void on_publish(const wire::Publish& publish, uint32_t bytes);
  void on_subscribe(const wire::Subscribe& subscribe);
  void subscribe_wildcard(uint64_t request_id, const std::string& pattern,
                          SubscribeRequest request, uint32_t prefetch);
  void reply_subscribed(uint64_t request_id, uint64_t consumer_id,
                        const std::string& name);
  void on_unsubscribe(const wire::Unsubscribe& unsubscribe);
  void on_ack(const wire::Ack& ack);
  void on_nack(const wire::Nack& nack);
  void on_ping(const wire::Ping& ping);
  void on_list_topics(const wire::ListTopics& list);
  void on_reset(const wire::ResetSubscription& reset);
  void on_create_topic(const wire::CreateTopic& create);
  void on_alter_topic(const wire::AlterTopic& alter);
  void on_delete_topic(const wire::DeleteTopic& request);
  void on_delete_subscription(const wire::DeleteSubscription& request);
  template <typename Frame, typename Settle>
  void settle(const Frame& frame, const char* what, Settle settle);
  // The consumer an Ack or Nack is for: `consumer_id`, or for a wildcard
  // consumer its part on `topic`. nullptr after replying with an Error.
  Consumer* find_consumer(uint64_t consumer_id,
                          const flatbuffers::String* topic, const char* what);
  void reply_deleted(uint64_t request_id);
  void send_consumer_closed(uint64_t consumer_id, wire::ErrorCode code,
                            const std::string& why);
  void detach(Consumer& consumer);
  void reply_error(uint64_t request_id, wire::ErrorCode code,
                   const std::string& message);

  Broker& broker_;
  Connection& connection_;
  bool greeted_ = false;
  uint64_t next_consumer_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Consumer>> consumers_;
  // A wildcard consumer is one consumer id with a part (an ephemeral
  // subscription and its consumer) on each topic its pattern matches.
  struct Wildcard {
    SubscribeRequest request;
    uint32_t prefetch;  // per part
    std::map<std::string, std::unique_ptr<Consumer>> parts;  // by topic name
  };
  std::unordered_map<uint64_t, Wildcard> wildcards_;

  void end_wildcard(uint64_t consumer_id, Wildcard& wildcard);
};

}  // namespace tern
