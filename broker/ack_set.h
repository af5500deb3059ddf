// AckSet: which offsets of a subscription are acknowledged, kept compactly as
// a floor (everything below it is acked) plus disjoint ranges above it.
//
// Consumers ack mostly in order, so the ranges collapse into the floor almost
// as soon as they appear and the set stays a handful of entries however many
// messages flow. This is also exactly what is persisted (storage::Cursor).
#pragma once

#include <cstdint>
#include <map>

#include "store.h"

namespace tern {

class AckSet {
 public:
  AckSet() = default;
  explicit AckSet(const storage::Cursor& cursor);

  uint64_t floor() const { return floor_; }
  bool contains(uint64_t offset) const;
  // How many offsets at or above the floor are acked.
  uint64_t acked_above_floor() const;
  // Marks [first, last] acked; returns true if anything changed.
  bool add(uint64_t first, uint64_t last);
  // Moves the floor up to `offset` (everything below counts as done).
  // Returns how many offsets below it were not acked before.
  uint64_t raise_floor(uint64_t offset);
  // Takes `offset` back out (the commit that acked it failed), lowering the
  // floor if it was below it. Returns whether it was acked.
  bool remove(uint64_t offset);
  storage::Cursor to_cursor() const;

 private:
  void absorb_into_floor();

  uint64_t floor_ = 0;
  std::map<uint64_t, uint64_t> ranges_;  // first -> last, inclusive, > floor_
};

}  // namespace tern
