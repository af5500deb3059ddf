// libFuzzer target: arbitrary bytes into frame::FrameReader.
//
// Input: one configuration byte, then the byte stream as it would arrive
// from a socket. The configuration picks the reader's maximum frame size and
// seeds the chunking. The stream is decoded twice: fed in one piece, and fed
// in pseudo-random chunks (alternating feed() and prepare()/commit(), with
// next() called between chunks as a connection does). Every frame returned
// is walked field by field (frame_walk.h) so AddressSanitizer sees any read
// the Verifier should have refused.
//
// The two decodings must agree result for result and frame for frame:
// how a stream is cut up by the network must never change what it means.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "frame.h"
#include "frame_walk.h"

namespace {

using tern::frame::FrameReader;
using Result = FrameReader::Result;

struct Outcome {
  Result result;
  uint64_t walk;  // checksum of the frame's fields, 0 if not a frame
  bool operator==(const Outcome& o) const {
    return result == o.result && walk == o.walk;
  }
};

// Takes frames until the reader needs more or fails; false once it failed
// (the stream cannot be resynchronised, so decoding stops there).
bool take_frames(FrameReader& reader, std::vector<Outcome>* out) {
  for (;;) {
    const tern::wire::Frame* frame = nullptr;
    Result result = reader.next(&frame);
    if (result == Result::kNeedMore) return true;
    if (result != Result::kFrame) {
      if (reader.error().empty()) abort();  // failures must say why
      out->push_back({result, 0});
      return false;
    }
    tern::fuzz::FrameWalk walk;
    walk.frame(*frame);
    out->push_back({result, walk.sum()});
  }
}

uint32_t max_frame_bytes(uint8_t config) {
  switch (config & 3) {
    case 0:
      return tern::frame::kDefaultMaxFrameBytes;
    case 1:
      return 64;
    case 2:
      return 1024;
    default:
      return 0;  // nothing but empty frames fit
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t config = data[0];
  const uint8_t* stream = data + 1;
  size_t length = size - 1;
  uint32_t max = max_frame_bytes(config);

  std::vector<Outcome> whole;
  {
    FrameReader reader(max);
    // Zero bytes too: regressions/frame_fuzz/feed-zero-bytes-into-empty-reader.
    reader.feed(stream, length);
    take_frames(reader, &whole);
  }

  std::vector<Outcome> chunked;
  {
    FrameReader reader(max);
    uint32_t rng = 0x9e3779b9u ^ config;
    size_t at = 0;
    bool ok = true;
    while (ok && at < length) {
      rng = rng * 1103515245u + 12345u;
      // Mostly small chunks, so frames straddle them; now and then big ones.
      size_t chunk =
          (rng >> 16) % 8 == 0 ? 1 + (rng >> 8) % 4096 : 1 + (rng >> 16) % 13;
      if (chunk > length - at) chunk = length - at;
      if ((rng >> 4) & 1) {
        reader.feed(stream + at, chunk);
      } else {
        // A socket read may fill less than the room asked for.
        uint8_t* room = reader.prepare(chunk + (rng >> 20) % 64);
        memcpy(room, stream + at, chunk);
        reader.commit(chunk);
      }
      at += chunk;
      ok = take_frames(reader, &chunked);
    }
  }

  if (!(whole == chunked)) {
    fprintf(stderr,
            "frame_fuzz: whole stream gave %zu outcomes, chunked %zu; they "
            "differ\n",
            whole.size(), chunked.size());
    abort();
  }
  return 0;
}
