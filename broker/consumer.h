// Consumer: one attachment of a connection to a subscription, with the
// credit it granted (prefetch) and the Deliver frame being filled for it.
#pragma once

#include <cstdint>

#include "deliver_frame.h"

namespace tern {

class Connection;
class Subscription;

struct Consumer {
  Consumer(uint64_t id, Connection& connection, Subscription& subscription,
           uint32_t prefetch)
      : id(id),
        connection(connection),
        subscription(subscription),
        prefetch(prefetch) {}

  uint32_t credit() const { return unacked < prefetch ? prefetch - unacked : 0; }

  const uint64_t id;  // unique within its connection
  Connection& connection;
  Subscription& subscription;
  const uint32_t prefetch;  // max unacked deliveries in flight
  uint32_t unacked = 0;
  // Its session wants to see the requests handed out (Session::grant_reply).
  bool grants_replies = false;
  DeliverFrame outgoing;
};

}  // namespace tern
