// libFuzzer target: arbitrary bytes as a stored message record.
//
// storage::decode_record is what stands between a RocksDB value — possibly
// damaged on disk — and the delivery path. Whatever it accepts is walked field
// by field (frame_walk.h) so AddressSanitizer sees any read outside the
// value; whatever it accepts must also survive being encoded again as the
// broker would (encode_record from the same fields) and decoded back equal.
//
// The cursor half of the storage format (subscription records) has its own
// target, cursor_fuzz.cc, since it needs a real store.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "frame_walk.h"
#include "record.h"

namespace {

// Rebuilds a wire::Message holding the record's key, headers and payload, as
// a Publish frame would carry it, so encode_record can be run on it.
const tern::wire::Message* as_message(const tern::wire::StoredMessage& stored,
                                      flatbuffers::FlatBufferBuilder& fbb) {
  namespace wire = tern::wire;
  auto copy = [&](const flatbuffers::Vector<uint8_t>* v) {
    return v ? fbb.CreateVector(v->data(), v->size())
             : flatbuffers::Offset<flatbuffers::Vector<uint8_t>>(0);
  };
  auto key = copy(stored.key());
  auto payload = copy(stored.payload());
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>>
      headers = 0;
  if (stored.headers()) {
    std::vector<flatbuffers::Offset<wire::Header>> list;
    for (const wire::Header* h : *stored.headers()) {
      auto name = h->name() ? fbb.CreateString(h->name())
                            : flatbuffers::Offset<flatbuffers::String>(0);
      list.push_back(wire::CreateHeader(fbb, name, copy(h->value())));
    }
    headers = fbb.CreateVector(list);
  }
  fbb.Finish(wire::CreateMessage(fbb, key, headers, payload));
  return flatbuffers::GetRoot<wire::Message>(fbb.GetBufferPointer());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string value(reinterpret_cast<const char*>(data), size);
  const tern::wire::StoredMessage* record = tern::storage::decode_record(value);
  if (record == nullptr) return 0;
  tern::fuzz::FrameWalk walk;
  walk.stored(*record);

  flatbuffers::FlatBufferBuilder message_fbb;
  const tern::wire::Message* message = as_message(*record, message_fbb);
  flatbuffers::FlatBufferBuilder record_fbb;
  tern::storage::encode_record(record_fbb, *message, record->timestamp_ms());
  std::string again(
      reinterpret_cast<const char*>(record_fbb.GetBufferPointer()),
      record_fbb.GetSize());
  const tern::wire::StoredMessage* decoded =
      tern::storage::decode_record(again);
  if (decoded == nullptr) {
    fprintf(stderr, "record_fuzz: a re-encoded record does not decode\n");
    abort();
  }
  tern::fuzz::FrameWalk walk_again;
  walk_again.stored(*decoded);
  if (walk_again.sum() != walk.sum()) {
    fprintf(stderr, "record_fuzz: a re-encoded record decodes differently\n");
    abort();
  }
  return 0;
}
