#include "memory_budget.h"

#include <malloc.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "clock.h"
#include "connection.h"
#include "log.h"
#include "topic.h"
#include "units.h"

namespace tern {

namespace {
// Giving tails back is normal under pressure: said at most this often.
constexpr int64_t kReportIntervalMs = 60000;
constexpr int64_t kReleaseIntervalMs = 1000;
}  // namespace

MemoryBudget::TopicPlace MemoryBudget::enter(Topic& topic) {
  topics_.push_front(&topic);
  return topics_.begin();
}

void MemoryBudget::leave(TopicPlace place, size_t held) {
  cached_ -= held;
  topics_.erase(place);
}

void MemoryBudget::trim() {
  if (cached_ + output_ <= limit_) return;
  size_t want = cached_ + output_ - limit_, freed = 0, topics = 0;
  // Coldest first; a topic that gives back stays where it is (giving back
  // is not a use), so each is visited once.
  for (auto it = topics_.rbegin(); it != topics_.rend() && freed < want; ++it) {
    size_t got = (*it)->give_back(want - freed);
    freed += got;
    topics += got > 0;
  }
  int64_t now = unix_ms();
  // What the tails gave back is free in the loop thread's heap, but the
  // allocator keeps it: read-back records come from the reader thread's
  // heap, and the two peaks would add up. Returning free pages to the
  // system walks the heaps (about a millisecond), so at most once a second.
  if (freed > 0 && now - last_release_ms_ >= kReleaseIntervalMs) {
    last_release_ms_ = now;
    malloc_trim(0);
  }
  if (freed > 0 && now - last_report_ms_ >= kReportIntervalMs) {
    last_report_ms_ = now;
    LOG_INFO(
        "memory budget %s reached: %s of tails given back by %zu topics "
        "(now cached %s, output %s)",
        cli::format_size(limit_).c_str(), cli::format_size(freed).c_str(),
        topics, cli::format_size(cached_).c_str(),
        cli::format_size(output_).c_str());
  }
}

MemoryBudget::ConnectionPlace MemoryBudget::enter(Connection& connection) {
  connections_.push_front(&connection);
  return connections_.begin();
}

void MemoryBudget::shed() {
  const size_t shed_above = limit_ / 8 * 5;
  if (output_ <= shed_above) return;
  std::vector<std::pair<size_t, Connection*>> slow;
  for (Connection* c : connections_)
    if (!c->closing() && c->output_waiting() >= kSlowReader)
      slow.emplace_back(c->output_waiting(), c);
  std::sort(slow.begin(), slow.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [waiting, connection] : slow) {
    if (output_ <= shed_above) break;
    LOG_WARN(
        "connection %s: not reading, %s waiting while all output is %s of a "
        "memory budget of %s; closing",
        connection->peer().c_str(), cli::format_size(waiting).c_str(),
        cli::format_size(output_).c_str(), cli::format_size(limit_).c_str());
    connection->close();  // gives its output back at once
  }
}

}  // namespace tern
