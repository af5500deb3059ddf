#include "copy.h"

namespace tern::frame {

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> copy_bytes(
    flatbuffers::FlatBufferBuilder& fbb,
    const flatbuffers::Vector<uint8_t>* bytes) {
  if (bytes == nullptr) return 0;
  return fbb.CreateVector(bytes->data(), bytes->size());
}

void copy_headers(flatbuffers::FlatBufferBuilder& fbb,
                  const HeaderList* headers,
                  std::vector<flatbuffers::Offset<wire::Header>>* out,
                  const char* drop_prefix) {
  if (headers == nullptr) return;
  out->reserve(out->size() + headers->size());
  for (const wire::Header* h : *headers) {
    if (drop_prefix != nullptr && h->name() != nullptr &&
        h->name()->string_view().rfind(drop_prefix, 0) == 0)
      continue;
    flatbuffers::Offset<flatbuffers::String> name = 0;
    if (h->name() != nullptr) name = fbb.CreateString(h->name());
    out->push_back(wire::CreateHeader(fbb, name, copy_bytes(fbb, h->value())));
  }
}

flatbuffers::Offset<HeaderList> copy_headers(flatbuffers::FlatBufferBuilder& fbb,
                                             const HeaderList* headers) {
  if (headers == nullptr || headers->size() == 0) return 0;
  // FlatBuffers wants the children built before the vector that holds them.
  std::vector<flatbuffers::Offset<wire::Header>> copied;
  copy_headers(fbb, headers, &copied);
  return fbb.CreateVector(copied);
}

}  // namespace tern::frame
