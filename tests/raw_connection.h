// RawConnection: a bare socket speaking (or not) the wire protocol by hand,
// for tests that must send what no correct client would, or stop reading.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "broker_process.h"
#include "frame.h"

namespace tern::test {

// What the broker sent on a raw connection, decoded.
struct Reply {
  bool frame = false;  // false: nothing arrived (closed or timed out)
  wire::Body type = wire::Body::NONE;
  wire::ErrorCode code = wire::ErrorCode::None;
  std::string message;
  uint32_t max_frame_bytes = 0;  // from HelloOk
  uint32_t heartbeat_ms = 0;     // from HelloOk
  uint64_t request_id = 0;       // from Error and ResetOk
  uint64_t offset = 0;           // from ResetOk
  uint32_t bytes = 0;            // the frame's length
  std::vector<wire::PublishResult> results;  // from PublishAck
};

// A bare socket speaking (or not) the wire protocol by hand.
class RawConnection {
 public:
  explicit RawConnection(const std::string& address)
      : fd_(connect_tcp(address)) {}
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool ok() const { return fd_ >= 0; }
  // Shuts down the sending side only: the broker sees end of input.
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send_bytes(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      size -= size_t(n);
    }
    return true;
  }
  bool send_bytes(const std::string& bytes) {
    return send_bytes(bytes.data(), bytes.size());
  }
  bool send_frame(const flatbuffers::FlatBufferBuilder& fbb) {
    return send_bytes(fbb.GetBufferPointer(), fbb.GetSize());
  }

  // The next frame from the broker, waiting at most `timeout`.
  Reply next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const wire::Frame* frame = nullptr;
      auto result = reader_.next(&frame);
      if (result == frame::FrameReader::Result::kFrame) {
        Reply reply = decode(frame);
        reply.bytes = reader_.frame_bytes();
        return reply;
      }
      if (result != frame::FrameReader::Result::kNeedMore) {
        Reply bad;
        bad.message = "unreadable frame from broker: " + reader_.error();
        return bad;
      }
      if (!read_some(deadline)) return Reply{};
    }
  }

  // Waits for the broker to close the connection; true if it did within
  // `timeout`. Bytes arriving meanwhile are kept for next().
  bool wait_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_) {
      if (!read_some(deadline) && !closed_) return false;
    }
    return true;
  }

  // Says Hello (promising a frame every `heartbeat_ms`, 0: no promise) and
  // expects HelloOk.
  Reply hello(uint32_t version = frame::kProtocolVersion,
              uint32_t heartbeat_ms = 0) {
    flatbuffers::FlatBufferBuilder fbb;
    frame::finish(fbb, wire::Body::Hello,
                  wire::CreateHelloDirect(fbb, 1, version, "raw-test", "", "",
                                          "", heartbeat_ms)
                      .Union());
    if (!send_frame(fbb)) return Reply{};
    return next(std::chrono::seconds(3));
  }

 private:
  // Reads whatever arrives before `deadline`; false on timeout or close.
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    if (closed_) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, int(left.count()));
    if (ready <= 0) return false;
    uint8_t* room = reader_.prepare(64 * 1024);
    ssize_t n = ::recv(fd_, room, 64 * 1024, 0);
    if (n > 0) {
      reader_.commit(size_t(n));
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    // EOF, or a reset: either way the broker closed the connection.
    closed_ = true;
    return false;
  }

  static Reply decode(const wire::Frame* frame) {
    Reply reply;
    reply.frame = true;
    reply.type = frame->body_type();
    if (auto error = frame->body_as_Error()) {
      reply.code = error->code();
      reply.request_id = error->request_id();
      if (error->message()) reply.message = error->message()->str();
    }
    if (auto ok = frame->body_as_ResetOk()) {
      reply.request_id = ok->request_id();
      reply.offset = ok->offset();
    }
    if (auto ack = frame->body_as_PublishAck()) {
      reply.request_id = ack->request_id();
      if (ack->results())
        for (const wire::PublishResult* r : *ack->results())
          reply.results.push_back(*r);
    }
    if (auto ok = frame->body_as_HelloOk()) {
      reply.max_frame_bytes = ok->max_frame_bytes();
      reply.heartbeat_ms = ok->heartbeat_ms();
    }
    return reply;
  }

  int fd_;
  bool closed_ = false;
  frame::FrameReader reader_;
};

}  // namespace tern::test
