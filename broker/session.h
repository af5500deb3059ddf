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
#include "permissions.h"
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
  // Answers its Hello with HelloOk: from here on it may send anything that
  // `permissions` allow, as `user` (empty: the broker has no users).
  void greet(uint64_t request_id, std::string user = "",
             Permissions permissions = {});
  const std::string& user() const { return user_; }
  const std::string& client_name() const { return client_name_; }
  // New permissions for its user (SIGHUP): its next frames are checked
  // against them, and its consumers of topics it may no longer subscribe to
  // are closed (ConsumerClosed with NotAuthorized).
  void set_permissions(Permissions permissions);
  // A request `message` was delivered to this session: it may publish one
  // reply to the message's tern-reply-to inbox (see may_publish()). Called
  // for consumers with grants_replies set.
  void grant_reply(const wire::StoredMessage& message);
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
  // Whether the user may do `action` on `topic`; if not, the client gets
  // NotAuthorized to `request_id` naming what (e.g. "delete topic") on which
  // topic, and the caller changes nothing.
  bool permitted(Action action, const std::string& topic, const char* what,
                 uint64_t request_id);
  // Publish permission for `count` messages to `topic`. An inbox needs no
  // permission for replies: each request delivered to this session allows
  // one message to its tern-reply-to inbox (as NATS's allow_responses).
  bool may_publish(const std::string& topic, size_t count,
                   uint64_t request_id);
  // Whether publishing replies takes reply rights: the user may not publish
  // everywhere, so its consumers note the requests they hand out.
  bool needs_reply_rights() const { return !permissions_.publish.allows_all(); }
  // Subscribe permission on `topic`, and for an inbox: being its owner.
  bool may_subscribe(const std::string& topic, uint64_t request_id);
  // Adds a consumer of `subscription`, noting requests it is handed if the
  // user needs them to reply.
  std::unique_ptr<Consumer> make_consumer(uint64_t id,
                                          Subscription& subscription,
                                          uint32_t prefetch);
  void on_publish(const wire::Publish& publish, uint32_t bytes);
  void on_transaction(const wire::Transaction& transaction, uint32_t bytes);
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
  // The consumer `consumer_id`, or for a wildcard consumer its part on
  // `topic`; nullptr if there is none (*wildcard: the id is a wildcard
  // consumer's, and `topic` is missing or none of its parts).
  Consumer* consumer_of(uint64_t consumer_id, const flatbuffers::String* topic,
                        bool* wildcard);
  // The consumer an Ack or Nack is for (consumer_of); nullptr after
  // replying with an Error if the frame was wrong.
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
  std::string user_;  // empty: the broker has no users
  std::string client_name_;    // from Hello
  uint32_t heartbeat_ms_ = 0;  // from the Hello, agreed in greet()
  Permissions permissions_;
  // Replies this session may still publish, per inbox (grant_reply()).
  std::unordered_map<std::string, uint64_t> reply_rights_;
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
