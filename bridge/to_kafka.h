// Tern -> Kafka: one route's loop (see bridge/README.md, "Guarantees").
//
// A durable Tern subscription feeds an idempotent producer (acks=all,
// gapless): each message becomes a record with the message's key, headers,
// and tern-topic / tern-offset headers, and is acked to Tern only when Kafka
// has acknowledged the record. Kafka's acknowledgements arrive on a thread
// of their own that only polls the producer, so that waiting for Tern's
// next message never delays them.
#pragma once

#include <atomic>

#include "config.h"
#include "metrics.h"

namespace tern::bridge {

// Mirrors until `stop` is set, then waits (up to 10 s) for the records in
// flight and acks them. Throws std::runtime_error on what the route cannot
// go on from: Tern or Kafka unreachable at start, a record Kafka refused.
void run_to_kafka(const Config& config, const ToKafkaRoute& route,
                  RouteMetrics& metrics, const std::atomic<bool>& stop);

}  // namespace tern::bridge
