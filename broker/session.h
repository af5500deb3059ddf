// Session: the protocol, as seen from one connection. Takes each verified
// frame, checks it is allowed now (Hello first, only client frames), and
// turns it into a broker operation: publish, subscribe, ack, unsubscribe.
// Owns the connection's consumers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "consumer.h"
#include "tern_generated.h"

namespace tern {

class Broker;
class Connection;

class Session {
 public:
  Session(Broker& broker, Connection& connection);

  void on_frame(const wire::Frame& frame);
  // The connection is closing: detach every consumer, so that what they had
  // not acked goes to the subscription's other consumers.
  void end();
  // A write completed: deliveries paused for congestion may go on.
  void on_drained();
  // The broker ends `consumer` (its subscription is being deleted): it is
  // detached and destroyed, and the client is told why.
  void close_consumer(Consumer& consumer, wire::ErrorCode code,
                      const std::string& why);

 private:
  void on_hello(const wire::Hello& hello);
  void on_publish(const wire::Publish& publish);
  void on_subscribe(const wire::Subscribe& subscribe);
  void on_unsubscribe(const wire::Unsubscribe& unsubscribe);
  void on_ack(const wire::Ack& ack);
  void on_nack(const wire::Nack& nack);
  void on_ping(const wire::Ping& ping);
  void on_list_topics(const wire::ListTopics& list);
  void on_reset(const wire::ResetSubscription& reset);
  void on_create_topic(const wire::CreateTopic& create);
  void on_delete_topic(const wire::DeleteTopic& request);
  void on_delete_subscription(const wire::DeleteSubscription& request);
  template <typename Frame, typename Settle>
  void settle(const Frame& frame, const char* what, Settle settle);
  void reply_deleted(uint64_t request_id);
  void detach(Consumer& consumer);
  void reply_error(uint64_t request_id, wire::ErrorCode code,
                   const std::string& message);

  Broker& broker_;
  Connection& connection_;
  bool greeted_ = false;
  uint64_t next_consumer_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Consumer>> consumers_;
};

}  // namespace tern
