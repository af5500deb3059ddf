// Records: one stored message as a verified FlatBuffer (see record.h).
//
// The publisher's Message lives in the receive buffer of a Publish frame,
// which is gone once the frame is handled, so its key, headers and payload are
// copied once here into the record that RocksDB keeps. Reading back never
// trusts the bytes: a record is only returned after the Verifier accepted it.
#include "record.h"

#include "copy.h"

#include <vector>

namespace tern::storage {

void encode_record(flatbuffers::FlatBufferBuilder& fbb,
                   const wire::Message& message, int64_t timestamp_ms) {
  auto key = frame::copy_bytes(fbb, message.key());
  auto payload = frame::copy_bytes(fbb, message.payload());
  auto headers = frame::copy_headers(fbb, message.headers());

  fbb.Finish(
      wire::CreateStoredMessage(
          fbb, timestamp_ms, key, headers, payload,
          message.ttl_ms() ? timestamp_ms + int64_t(message.ttl_ms()) : 0));
}

void restamp_record(flatbuffers::FlatBufferBuilder& fbb,
                    const wire::StoredMessage& record, int64_t timestamp_ms) {
  auto key = frame::copy_bytes(fbb, record.key());
  auto payload = frame::copy_bytes(fbb, record.payload());
  auto headers = frame::copy_headers(fbb, record.headers());
  int64_t expires = record.expires_ms();
  if (expires != 0) expires += timestamp_ms - record.timestamp_ms();
  fbb.Finish(wire::CreateStoredMessage(fbb, timestamp_ms, key, headers, payload,
                                       expires));
}

size_t record_size_hint(const wire::Message& message) {
  size_t size = 128;  // tables, vtables, alignment
  if (message.key()) size += message.key()->size();
  if (message.payload()) size += message.payload()->size();
  if (const auto* headers = message.headers()) {
    for (const wire::Header* h : *headers) {
      size += 32;
      if (h->name()) size += h->name()->size();
      if (h->value()) size += h->value()->size();
    }
  }
  return size;
}

const wire::StoredMessage* decode_record(const uint8_t* data, size_t size) {
  flatbuffers::Verifier verifier(data, size);
  // StoredMessage is not the schema's root type, so verify it by name.
  if (!verifier.VerifyBuffer<wire::StoredMessage>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<wire::StoredMessage>(data);
}

}  // namespace tern::storage
