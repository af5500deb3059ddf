// The record format: how one message is laid out as a RocksDB value.
//
// A record is a FlatBuffer whose root is wire::StoredMessage (see
// protocol/tern.fbs): the broker's append timestamp plus the key, headers and
// payload exactly as the publisher sent them. Records are verified when read
// back, so a damaged value is reported instead of being delivered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tern_generated.h"

namespace tern::storage {

// Encodes `message` (from a Publish frame) stamped with `timestamp_ms` into
// `fbb`; the record is fbb.GetBufferPointer() / fbb.GetSize() afterwards.
void encode_record(flatbuffers::FlatBufferBuilder& fbb,
                   const wire::Message& message, int64_t timestamp_ms);

// Encodes a copy of `record` stamped with `timestamp_ms`, its expiry moved by
// as much: a scheduled message is stored when published and stamped again
// when it is appended, so that append times rise with offsets and a TTL
// counts from the append.
void restamp_record(flatbuffers::FlatBufferBuilder& fbb,
                    const wire::StoredMessage& record, int64_t timestamp_ms);

// About how many bytes the record of `message` takes: a builder this size
// holds it without growing.
size_t record_size_hint(const wire::Message& message);

// Returns the record in `bytes`, or nullptr if it is not a valid record.
// The result points into `bytes`.
const wire::StoredMessage* decode_record(const uint8_t* data, size_t size);
inline const wire::StoredMessage* decode_record(const std::string& bytes) {
  return decode_record(reinterpret_cast<const uint8_t*>(bytes.data()),
                       bytes.size());
}

}  // namespace tern::storage
