#include "ack_set.h"

#include <algorithm>
#include <iterator>

namespace tern {

AckSet::AckSet(const storage::Cursor& cursor) : floor_(cursor.ack_floor) {
  for (const auto& [first, last] : cursor.acked) add(first, last);
}

bool AckSet::contains(uint64_t offset) const {
  if (offset < floor_) return true;
  auto it = ranges_.upper_bound(offset);
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second >= offset;
}

uint64_t AckSet::acked_above_floor() const {
  uint64_t n = 0;
  for (const auto& [first, last] : ranges_) n += last - first + 1;
  return n;
}

bool AckSet::add(uint64_t first, uint64_t last) {
  // No offset reaches the top of the range; capping keeps `last + 1` from
  // wrapping (a damaged stored cursor could hold such a range).
  last = std::min(last, UINT64_MAX - 1);
  if (last < first) return false;
  first = std::max(first, floor_);
  if (last < first) return false;
  // Merge with every range that overlaps or touches [first, last].
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin() && std::prev(it)->second + 1 >= first) --it;
  bool changed = true;
  while (it != ranges_.end() && it->first <= last + 1) {
    if (it->first <= first && it->second >= last) changed = false;
    first = std::min(first, it->first);
    last = std::max(last, it->second);
    it = ranges_.erase(it);
  }
  ranges_[first] = last;
  absorb_into_floor();
  return changed;
}

uint64_t AckSet::raise_floor(uint64_t offset) {
  if (offset <= floor_) return 0;
  uint64_t newly = offset - floor_;
  floor_ = offset;
  while (!ranges_.empty() && ranges_.begin()->first < floor_) {
    auto [first, last] = *ranges_.begin();
    ranges_.erase(ranges_.begin());
    newly -= std::min(last + 1, floor_) - first;
    if (last >= floor_) ranges_[floor_] = last;
  }
  absorb_into_floor();
  return newly;
}

bool AckSet::remove(uint64_t offset) {
  if (offset < floor_) {
    // What lay between it and the old floor stays acked, as a range; the
    // old floor itself was not acked, so it touches no range above.
    if (offset + 1 < floor_) ranges_[offset + 1] = floor_ - 1;
    floor_ = offset;
    return true;
  }
  auto it = ranges_.upper_bound(offset);
  if (it == ranges_.begin()) return false;
  --it;
  auto [first, last] = *it;
  if (last < offset) return false;
  ranges_.erase(it);
  if (first < offset) ranges_[first] = offset - 1;
  if (offset < last) ranges_[offset + 1] = last;
  return true;
}

void AckSet::absorb_into_floor() {
  while (!ranges_.empty() && ranges_.begin()->first == floor_) {
    floor_ = ranges_.begin()->second + 1;
    ranges_.erase(ranges_.begin());
  }
}

storage::Cursor AckSet::to_cursor() const {
  storage::Cursor cursor;
  cursor.ack_floor = floor_;
  cursor.acked.assign(ranges_.begin(), ranges_.end());
  return cursor;
}

}  // namespace tern
