// The store's layout: how keys and values are encoded in RocksDB. Shared by
// Store and Batch (store.cc); nothing outside storage/ uses it. Keys of one
// topic share a prefix, so a topic's data is a handful of range deletes; the
// key families are listed in store.h.
//
// Subscription record value (key "S" | topic id | name), little-endian:
//   u32 ack_timeout_ms
//   u64 ack_floor
//   u32 count
//   count x (u64 first, u64 last)      inclusive acked ranges above the floor
//   then, only if there are redeliveries or a skipped count:
//   u32 n, n x (u64 offset, u32 attempts, u64 due_ms)   redeliveries;
//                                      attempts' top bit: rejected
//   u64 skipped                        only if not 0
// Fixed-width fields keep the decoder a few lines of bounds-checked reads; the
// ranges are few (acks are mostly in order, so the floor absorbs them).
#pragma once

#include <rocksdb/slice.h>

#include <cstdint>
#include <string>

#include "store.h"

namespace tern::storage {

inline constexpr char kTopicTag = 'T';
inline constexpr char kTopicSettingsTag = 'C';
inline constexpr char kTopicStateTag = 'N';
inline constexpr char kSubscriptionTag = 'S';
inline constexpr char kSubscriptionSettingsTag = 'P';
inline constexpr char kDedupeTag = 'D';
inline constexpr char kSequencesTag = 'Q';
inline constexpr char kScheduledTag = 'W';
inline constexpr char kMessagesFamily[] = "messages";

// --- keys. Messages (their own column family): topic id | offset, both
// big-endian so that keys sort in offset order. Everything else: one tag
// byte, the topic id big-endian (a topic's keys sort together), then what
// names the entry.
void put_be64(std::string* out, uint64_t v);
uint64_t get_be64(const char* p);
std::string message_key(uint64_t topic_id, uint64_t offset);
std::string topic_key(uint64_t topic_id, char tag = kTopicTag);
std::string subscription_key(uint64_t topic_id, const std::string& name,
                             char tag = kSubscriptionTag);
std::string dedupe_key(uint64_t topic_id, const std::string& id);
// Producer sequences: the producer and the first sequence, big-endian, so a
// producer's records sort in sequence order and a range delete covers a run.
std::string sequences_key(uint64_t topic_id, uint64_t producer,
                          uint64_t sequence);
// Scheduled messages: the due time and the ticket, big-endian, so a topic's
// entries sort in the order they fall due.
std::string scheduled_key(uint64_t topic_id, int64_t due_ms, uint64_t ticket);

// --- values: fixed-width little-endian fields; each decoder returns false
// for a malformed value.
void put_le32(std::string* out, uint32_t v);
void put_le64(std::string* out, uint64_t v);
uint64_t get_le(const char* p, int bytes);  // `bytes` of them, up to 8
std::string encode_subscription(const SubscriptionRecord& sub);
bool decode_subscription(const rocksdb::Slice& value, SubscriptionRecord* sub);
// Settings: u64 max_age_ms, u64 max_bytes, u64 max_messages, u8 flags.
std::string encode_settings(const TopicSettings& t);
bool decode_settings(const rocksdb::Slice& value, TopicSettings* t);
// State: u64 first_offset, u64 next_offset, u64 messages, u64 bytes, then
// (left out by stores from before scheduled messages) u64 scheduled,
// u64 next_ticket.
std::string encode_state(const TopicState& state);
bool decode_state(const rocksdb::Slice& value, TopicState* state);

}  // namespace tern::storage
