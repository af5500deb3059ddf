// ProducerSequences: which offsets a producer's sequence numbers were
// appended at on one topic, for de-duplication without an id per message.
//
// A client that may send a Publish frame again (after a reconnect) gives
// the frame its producer (a random 64-bit number for its session) and the
// sequence of its first message; message i has sequence + i. A frame
// re-sent carries the same numbers, so the broker finds the messages it had
// stored and answers with their offsets instead of appending them again.
//
// Held as runs: sequences [first, first + count) at offsets [first_offset,
// first_offset + count). A producer publishing alone to a topic makes one
// run however many messages it sends; one sharing a topic with others makes
// a run per frame. A run is stored as one record per commit batch it grew
// in (a record is never rewritten, so a failed commit cannot leave a stored
// claim to sequences that were not stored). A run takes new messages for
// kJoinMs only, then the next message starts a new one: each run, with its
// records, is forgotten at most kJoinMs plus the de-duplication window after
// it began, even while its producer keeps sending. Only the loop thread uses
// it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <unordered_map>
#include <vector>

namespace tern {

class ProducerSequences {
 public:
  static constexpr int64_t kJoinMs = 10000;

  // The offset `sequence` of `producer` was appended at, if held.
  bool find(uint64_t producer, uint64_t sequence, uint64_t* offset) const;
  // `sequence` of `producer` was appended at `offset`: joins the run it
  // continues (next sequence at the next offset), or starts one (returns
  // true). Must not be held already (find() says no).
  bool add(uint64_t producer, uint64_t sequence, uint64_t offset,
           int64_t expires_ms);
  // A stored run read back at start-up: joins the run it continues, as add().
  bool restore(uint64_t producer, uint64_t first, uint64_t count,
               uint64_t first_offset, int64_t expires_ms);
  // Sequences [first, first + count) were not stored after all (their
  // commit failed): a run holding them is cut around them.
  void forget(uint64_t producer, uint64_t first, uint64_t count);

  // Runs held, over all producers.
  size_t runs() const { return runs_; }

  struct Expired {
    uint64_t producer;
    uint64_t first;  // sequences [first, end)
    uint64_t end;
  };
  // Forgets the runs whose window ended by `now_ms` and returns them.
  std::vector<Expired> expire(int64_t now_ms);

 private:
  struct Run {
    uint64_t count;
    uint64_t first_offset;
    int64_t expires_ms;        // of its last message
    int64_t first_expires_ms;  // of its first: it joins for kJoinMs
  };
  using Runs = std::map<uint64_t, Run>;  // by first sequence

  void start_run(uint64_t producer, uint64_t first, const Run& run);

  std::unordered_map<uint64_t, Runs> producers_;
  size_t runs_ = 0;

  // (expiry, producer, first sequence), soonest first. A run extended since
  // is queued again with its new expiry when its entry comes up; an entry
  // whose run is gone is skipped.
  struct Deadline {
    int64_t expires_ms;
    uint64_t producer;
    uint64_t first;
    bool operator>(const Deadline& o) const {
      return expires_ms > o.expires_ms;
    }
  };
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>>
      deadlines_;
};

}  // namespace tern
