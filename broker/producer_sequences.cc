#include "producer_sequences.h"

#include <algorithm>

namespace tern {

namespace {

// The run holding `sequence`, or runs.end().
template <typename Runs>
auto holding(Runs& runs, uint64_t sequence) -> decltype(runs.begin()) {
  auto it = runs.upper_bound(sequence);
  if (it == runs.begin()) return runs.end();
  --it;
  return sequence - it->first < it->second.count ? it : runs.end();
}

}  // namespace

bool ProducerSequences::find(uint64_t producer, uint64_t sequence,
                             uint64_t* offset) const {
  auto p = producers_.find(producer);
  if (p == producers_.end()) return false;
  auto it = holding(p->second, sequence);
  if (it == p->second.end()) return false;
  *offset = it->second.first_offset + (sequence - it->first);
  return true;
}

bool ProducerSequences::add(uint64_t producer, uint64_t sequence,
                            uint64_t offset, int64_t expires_ms) {
  return restore(producer, sequence, 1, offset, expires_ms);
}

bool ProducerSequences::restore(uint64_t producer, uint64_t first,
                                uint64_t count, uint64_t first_offset,
                                int64_t expires_ms) {
  Runs& runs = producers_[producer];
  if (first > 0) {
    auto it = holding(runs, first - 1);
    if (it != runs.end()) {
      Run& run = it->second;
      if (it->first + run.count == first &&
          run.first_offset + run.count == first_offset &&
          expires_ms - run.first_expires_ms < kJoinMs) {
        run.count += count;
        run.expires_ms = std::max(run.expires_ms, expires_ms);
        return false;
      }
    }
  }
  start_run(producer, first, Run{count, first_offset, expires_ms, expires_ms});
  return true;
}

void ProducerSequences::start_run(uint64_t producer, uint64_t first,
                                  const Run& run) {
  producers_[producer].emplace(first, run);
  ++runs_;
  deadlines_.push({run.expires_ms, producer, first});
}

void ProducerSequences::forget(uint64_t producer, uint64_t first,
                               uint64_t count) {
  auto p = producers_.find(producer);
  if (p == producers_.end()) return;
  Runs& runs = p->second;
  uint64_t end = first + count;
  auto it = runs.upper_bound(first);
  if (it != runs.begin()) --it;
  while (it != runs.end() && it->first < end) {
    uint64_t run_first = it->first;
    Run run = it->second;
    uint64_t run_end = run_first + run.count;
    if (run_end <= first) {
      ++it;
      continue;
    }
    it = runs.erase(it);
    --runs_;
    // The part before keeps its key, so its queued deadline still applies.
    if (run_first < first) {
      runs.emplace(run_first, Run{first - run_first, run.first_offset,
                                  run.expires_ms, run.first_expires_ms});
      ++runs_;
    }
    if (run_end > end) {
      start_run(producer, end,
                Run{run_end - end, run.first_offset + (end - run_first),
                    run.expires_ms, run.first_expires_ms});
    }
  }
  if (runs.empty()) producers_.erase(p);
}

std::vector<ProducerSequences::Expired> ProducerSequences::expire(
    int64_t now_ms) {
  std::vector<Expired> expired;
  while (!deadlines_.empty() && deadlines_.top().expires_ms <= now_ms) {
    Deadline d = deadlines_.top();
    deadlines_.pop();
    auto p = producers_.find(d.producer);
    if (p == producers_.end()) continue;
    auto it = p->second.find(d.first);
    if (it == p->second.end()) continue;
    if (it->second.expires_ms > now_ms) {
      // Extended since it was queued.
      deadlines_.push({it->second.expires_ms, d.producer, d.first});
      continue;
    }
    expired.push_back({d.producer, d.first, d.first + it->second.count});
    p->second.erase(it);
    --runs_;
    if (p->second.empty()) producers_.erase(p);
  }
  return expired;
}

}  // namespace tern
