#include "layout.h"

namespace tern::storage {

namespace {

// Marks a rejected redelivery in its stored attempts count.
constexpr uint32_t kRejectedBit = 1u << 31;

enum : uint8_t { kWorkQueue = 1, kDeadLetterExpired = 2, kTemporary = 4 };

}  // namespace

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void put_le64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void put_le32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// --- key encoding ------------------------------------------------------------

void put_be64(std::string* out, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(buf, 8);
}

uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string message_key(uint64_t topic_id, uint64_t offset) {
  std::string key;
  key.reserve(16);
  put_be64(&key, topic_id);
  put_be64(&key, offset);
  return key;
}

std::string topic_key(uint64_t topic_id, char tag) {
  std::string key(1, tag);
  put_be64(&key, topic_id);
  return key;
}

std::string subscription_key(uint64_t topic_id, const std::string& name,
                             char tag) {
  std::string key(1, tag);
  put_be64(&key, topic_id);
  key += name;
  return key;
}

std::string dedupe_key(uint64_t topic_id, const std::string& id) {
  std::string key(1, kDedupeTag);
  put_be64(&key, topic_id);
  key += id;
  return key;
}

std::string sequences_key(uint64_t topic_id, uint64_t producer,
                          uint64_t sequence) {
  std::string key(1, kSequencesTag);
  put_be64(&key, topic_id);
  put_be64(&key, producer);
  put_be64(&key, sequence);
  return key;
}

std::string scheduled_key(uint64_t topic_id, int64_t due_ms, uint64_t ticket) {
  std::string key(1, kScheduledTag);
  put_be64(&key, topic_id);
  put_be64(&key, uint64_t(due_ms));
  put_be64(&key, ticket);
  return key;
}

// --- subscription value encoding (see layout.h) -----------------------------

std::string encode_subscription(const SubscriptionRecord& sub) {
  std::string value;
  value.reserve(16 + 16 * sub.cursor.acked.size());
  put_le32(&value, sub.ack_timeout_ms);
  put_le64(&value, sub.cursor.ack_floor);
  put_le32(&value, static_cast<uint32_t>(sub.cursor.acked.size()));
  for (const auto& range : sub.cursor.acked) {
    put_le64(&value, range.first);
    put_le64(&value, range.second);
  }
  // The tail is left out while it would say nothing, so the common value
  // stays small and values written before a field existed still decode.
  if (!sub.redeliveries.empty() || sub.skipped != 0) {
    put_le32(&value, static_cast<uint32_t>(sub.redeliveries.size()));
    for (const Redelivery& r : sub.redeliveries) {
      put_le64(&value, r.offset);
      put_le32(&value, r.attempts | (r.rejected ? kRejectedBit : 0));
      put_le64(&value, static_cast<uint64_t>(r.due_ms));
    }
  }
  if (sub.skipped != 0) put_le64(&value, sub.skipped);
  return value;
}

// Returns false if `value` is not a well-formed subscription value.
bool decode_subscription(const rocksdb::Slice& value, SubscriptionRecord* sub) {
  const char* p = value.data();
  size_t size = value.size();
  if (size < 16) return false;
  sub->ack_timeout_ms = static_cast<uint32_t>(get_le(p, 4));
  sub->cursor.ack_floor = get_le(p + 4, 8);
  uint64_t count = get_le(p + 12, 4);
  // Checked before allocating anything, so a damaged count cannot ask for
  // gigabytes.
  if ((size - 16) / 16 < count) return false;
  size_t rest = size - 16 - 16 * count;  // the optional tail
  uint64_t redeliveries = 0;
  bool has_skipped = false;
  if (rest != 0) {
    if (rest < 4) return false;
    redeliveries = get_le(p + 16 + 16 * count, 4);
    if ((rest - 4) / 20 < redeliveries) return false;
    size_t after = rest - 4 - 20 * redeliveries;
    if (after != 0 && after != 8) return false;
    has_skipped = after == 8;
  }
  sub->cursor.acked.clear();
  sub->cursor.acked.reserve(count);
  p += 16;
  for (uint64_t i = 0; i < count; ++i, p += 16) {
    uint64_t first = get_le(p, 8);
    uint64_t last = get_le(p + 8, 8);
    if (first > last) return false;
    if (!sub->cursor.acked.empty() && first <= sub->cursor.acked.back().second)
      return false;  // not sorted and disjoint
    sub->cursor.acked.emplace_back(first, last);
  }
  sub->redeliveries.clear();
  sub->skipped = 0;
  if (rest == 0) return true;
  p += 4;
  sub->redeliveries.reserve(redeliveries);
  for (uint64_t i = 0; i < redeliveries; ++i, p += 20) {
    Redelivery r;
    r.offset = get_le(p, 8);
    uint32_t attempts = static_cast<uint32_t>(get_le(p + 8, 4));
    r.attempts = attempts & ~kRejectedBit;
    r.rejected = (attempts & kRejectedBit) != 0;
    r.due_ms = static_cast<int64_t>(get_le(p + 12, 8));
    sub->redeliveries.push_back(r);
  }
  if (has_skipped) sub->skipped = get_le(p, 8);
  return true;
}

// --- topic settings and state values (see layout.h) -------------------------

std::string encode_settings(const TopicSettings& t) {
  std::string value;
  put_le64(&value, t.max_age_ms);
  put_le64(&value, t.max_bytes);
  put_le64(&value, t.max_messages);
  value.push_back(
      static_cast<char>((t.work_queue ? kWorkQueue : 0) |
                        (t.dead_letter_expired ? kDeadLetterExpired : 0) |
                        (t.temporary ? kTemporary : 0)));
  return value;
}

bool decode_settings(const rocksdb::Slice& value, TopicSettings* t) {
  if (value.size() != 25) return false;
  const char* p = value.data();
  t->max_age_ms = get_le(p, 8);
  t->max_bytes = get_le(p + 8, 8);
  t->max_messages = get_le(p + 16, 8);
  uint8_t flags = static_cast<uint8_t>(p[24]);
  t->work_queue = flags & kWorkQueue;
  t->dead_letter_expired = flags & kDeadLetterExpired;
  t->temporary = flags & kTemporary;
  return true;
}

std::string encode_state(const TopicState& state) {
  std::string value;
  value.reserve(48);
  put_le64(&value, state.first_offset);
  put_le64(&value, state.next_offset);
  put_le64(&value, state.messages);
  put_le64(&value, state.bytes);
  put_le64(&value, state.scheduled);
  put_le64(&value, state.next_ticket);
  return value;
}

bool decode_state(const rocksdb::Slice& value, TopicState* state) {
  if (value.size() != 32 && value.size() != 48) return false;
  const char* p = value.data();
  state->first_offset = get_le(p, 8);
  state->next_offset = get_le(p + 8, 8);
  state->messages = get_le(p + 16, 8);
  state->bytes = get_le(p + 24, 8);
  if (value.size() == 48) {
    state->scheduled = get_le(p + 32, 8);
    state->next_ticket = get_le(p + 40, 8);
  }
  return state->first_offset <= state->next_offset;
}

}  // namespace tern::storage
