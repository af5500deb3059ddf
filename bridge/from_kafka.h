// Kafka -> Tern: one route's loop (see bridge/README.md, "Guarantees").
//
// A member of the route's Kafka consumer group publishes what it reads to
// the Tern topic, in frames of up to 256 records (or 1 MiB), each with the id
// kafka:<topic>:<partition>:<offset> so that Tern's de-duplication stores a
// record re-read after a crash once. A partition's offset is committed to
// Kafka only up to the records Tern has confirmed, in order: every second,
// when the partition is revoked, and on stop. Backpressure: publishing
// blocks while max_unconfirmed records await Tern's confirm, and the
// consumer stops fetching once librdkafka's queue is full.
#pragma once

#include <atomic>

#include "config.h"
#include "metrics.h"

namespace tern::bridge {

// Mirrors until `stop` is set, then publishes what it read, waits for
// Tern's confirms and commits. Throws std::runtime_error on what the route
// cannot go on from: Tern or Kafka unreachable at start, a record Tern
// refused (nothing after it is committed).
void run_from_kafka(const Config& config, const FromKafkaRoute& route,
                    RouteMetrics& metrics, const std::atomic<bool>& stop);

}  // namespace tern::bridge
