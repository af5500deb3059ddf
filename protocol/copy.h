// Copying the parts of a message from one FlatBuffer into another builder.
// A message's key, headers and payload move from a Publish frame into a
// stored record, and from a record into a Deliver frame or a dead letter;
// this is the one place that knows how.
#pragma once

#include <vector>

#include "tern_generated.h"

namespace tern::frame {

using HeaderList = flatbuffers::Vector<flatbuffers::Offset<wire::Header>>;

// A copy of `bytes`; absent stays absent.
flatbuffers::Offset<flatbuffers::Vector<uint8_t>> copy_bytes(
    flatbuffers::FlatBufferBuilder& fbb,
    const flatbuffers::Vector<uint8_t>* bytes);

// Appends copies of `headers` (may be null) to `out`, leaving out those whose
// name starts with `drop_prefix` if one is given.
void copy_headers(flatbuffers::FlatBufferBuilder& fbb,
                  const HeaderList* headers,
                  std::vector<flatbuffers::Offset<wire::Header>>* out,
                  const char* drop_prefix = nullptr);

// A copy of `headers`; absent or empty stays absent.
flatbuffers::Offset<HeaderList> copy_headers(flatbuffers::FlatBufferBuilder& fbb,
                                             const HeaderList* headers);

}  // namespace tern::frame
