// The crash loop: kill -9 the broker again and again under load, and check
// after every crash that nothing it promised was lost.
//
// Each iteration (re)starts one broker on the same data directory and runs,
// against it, two producers (pipelined publish_async; every confirm is
// recorded as offset -> payload) and two consumers on two durable
// subscriptions (one each; they ack everything they receive). At a random
// moment, 50..400 ms after the start by default, the broker gets SIGKILL.
//
// Checked after each iteration (cheap, incremental):
//   - confirmed offsets never repeat and every offset confirmed after a
//     restart lies above everything confirmed before it;
//   - a delivered message has the payload its offset was confirmed with (or,
//     if never confirmed, one that some producer sent);
//   - no delivery repeats within one broker run (no ack timeouts are in play);
//   - first deliveries arrive in offset order within a consumer's session;
//   - no message is redelivered after its ack was known to be committed (see
//     below).
// Checked once at the end, after a last restart: both subscriptions are
// drained, every confirmed message reached each of them at least once, and
// the whole topic, read back from the earliest offset, holds every confirmed
// message exactly once at its confirmed offset, offsets strictly increasing,
// nothing that no producer sent, and every message ever delivered.
//
// Retries. Every message carries its payload as producer message id. After a
// restart each producer first publishes again what its predecessor sent but
// never saw confirmed, with the same ids; the broker's de-duplication must
// answer "duplicate" (with the original offset) for those that were stored
// before the kill, so that the final audit finds no payload stored twice.
//
// Duplicates. An Ack has no reply, and the broker persists cursors in the
// group commit after it processed them, so an ack in flight at the kill is
// legitimately forgotten: redelivering a message acked shortly before a crash
// is correct at-least-once behaviour, and is counted, not failed. What must
// not happen is a redelivery after the ack was committed. A consumer learns
// that with a barrier: it pings the broker on its own connection after
// acking (so the broker has read the acks and queued the cursor for the next
// group commit), and once a publish that was sent after the Pong has been
// confirmed, the cursor's commit — which commits go out in order — is done too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tern::test {

struct CrashLoopOptions {
  int iterations = 5;
  uint64_t seed = 0;  // 0: pick one at random (the report says which)
  std::chrono::milliseconds min_kill_delay{50};
  std::chrono::milliseconds max_kill_delay{400};
  // No new iteration starts once this much time has passed.
  std::chrono::seconds time_budget{600};
  // Prints one line per iteration to stdout.
  bool verbose = false;
};

struct CrashLoopReport {
  uint64_t seed = 0;
  int iterations = 0;  // kills done
  bool stopped_by_time_budget = false;
  size_t confirmed = 0;    // messages confirmed over all iterations
  size_t retried = 0;      // unconfirmed at a kill, published again after it
  size_t retried_stored = 0;  // of those: already stored (confirmed duplicate)
  size_t lost = 0;         // confirmed, but not at their offset in the log
  size_t undelivered = 0;  // (subscription, confirmed message) never delivered
  size_t delivered = 0;    // deliveries to the two subscriptions, all of them
  // Deliveries of an offset the subscription had already received before a
  // crash; `duplicates_after_ack` of them had been acked (ack not committed).
  size_t duplicates = 0;
  size_t duplicates_after_ack = 0;
  // Acks the consumers sent before a kill, and how many of them were known
  // committed by then (so their redelivery would have been a violation).
  size_t acks_sent = 0;
  size_t acks_committed = 0;
  size_t log_messages = 0;  // messages in the topic at the end
  double seconds = 0;
  // Everything that went wrong, one line each (capped); empty on success.
  std::vector<std::string> violations;

  std::string summary() const;
};

// Runs the loop against a broker of its own (BrokerProcess, fsync always).
// Throws only if the broker cannot be started at all.
CrashLoopReport run_crash_loop(const CrashLoopOptions& options);

// The variant for the reconnecting client: one broker killed (kill -9) and
// restarted on the same port `iterations` times, at random moments, under
// two producers that use the default Client (reconnect on, automatic
// producer ids) and publish_async without any retry code of their own, for
// the whole run. At the end every publish must have been confirmed without
// error, every confirmed message must sit at its confirmed offset, and no
// message may be stored twice.
struct ReconnectLoopReport {
  uint64_t seed = 0;
  int iterations = 0;            // kills done
  size_t published = 0;          // messages handed to publish_async
  size_t confirmed = 0;          // confirmed without error
  size_t failed = 0;             // confirmed with an error (must be 0)
  size_t duplicate_results = 0;  // re-sent, already stored (duplicate = true)
  size_t lost = 0;               // confirmed but not at their offset in the log
  size_t stored_twice = 0;       // payloads found more than once in the log
  size_t log_messages = 0;
  double seconds = 0;
  std::vector<std::string> violations;

  std::string summary() const;
};
ReconnectLoopReport run_reconnect_crash_loop(const CrashLoopOptions& options);

// options.seed, or a random one if that is 0 (reports print it, so that a
// failing run can be repeated).
uint64_t crash_loop_seed(const CrashLoopOptions& options);

// Options from the environment, on top of `defaults`: CRASH_ITERATIONS,
// CRASH_SEED, CRASH_SECONDS (time budget).
CrashLoopOptions crash_loop_options_from_env(CrashLoopOptions defaults);

}  // namespace tern::test
