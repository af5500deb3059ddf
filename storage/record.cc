// Records: one stored message as a verified FlatBuffer (see record.h).
//
// The publisher's Message lives in the receive buffer of a Publish frame,
// which is gone once the frame is handled, so its key, headers and payload are
// copied once here into the record that RocksDB keeps. Reading back never
// trusts the bytes: a record is only returned after the Verifier accepted it.
#include "record.h"

#include <vector>

namespace tern::storage {

namespace {

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> copy_bytes(
    flatbuffers::FlatBufferBuilder& fbb,
    const flatbuffers::Vector<uint8_t>* bytes) {
  if (bytes == nullptr) return 0;  // absent stays absent
  return fbb.CreateVector(bytes->data(), bytes->size());
}

}  // namespace

void encode_record(flatbuffers::FlatBufferBuilder& fbb,
                   const wire::Message& message, int64_t timestamp_ms) {
  auto key = copy_bytes(fbb, message.key());
  auto payload = copy_bytes(fbb, message.payload());

  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>>
      headers = 0;
  if (const auto* in = message.headers()) {
    std::vector<flatbuffers::Offset<wire::Header>> copied;
    copied.reserve(in->size());
    for (const wire::Header* header : *in) {
      flatbuffers::Offset<flatbuffers::String> name = 0;
      if (header->name() != nullptr) name = fbb.CreateString(header->name());
      copied.push_back(
          wire::CreateHeader(fbb, name, copy_bytes(fbb, header->value())));
    }
    headers = fbb.CreateVector(copied);
  }

  fbb.Finish(
      wire::CreateStoredMessage(
          fbb, timestamp_ms, key, headers, payload,
          message.ttl_ms() ? timestamp_ms + int64_t(message.ttl_ms()) : 0));
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
