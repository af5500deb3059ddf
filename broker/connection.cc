#include "connection.h"

#include "broker.h"
#include "log.h"

namespace tern {

namespace {
constexpr size_t kReadChunk = 64 * 1024;

// The peer's IP address ("127.0.0.1", "::1") and "address:port" for logs
// ("[::1]:5000" for IPv6); "unknown" if the socket has no peer.
void peer_name(uv_tcp_t* tcp, std::string* ip, std::string* peer) {
  sockaddr_storage addr;
  int len = sizeof addr;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    *ip = *peer = "unknown";
    return;
  }
  char host[64] = "";
  if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    uv_ip6_name(a, host, sizeof host);
    *ip = host;
    *peer = "[" + *ip + "]:" + std::to_string(ntohs(a->sin6_port));
    return;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&addr);
  uv_ip4_name(a, host, sizeof host);
  *ip = host;
  *peer = *ip + ":" + std::to_string(ntohs(a->sin_port));
}

wire::ErrorCode code_for(frame::FrameReader::Result result) {
  switch (result) {
    case frame::FrameReader::Result::kTooLarge:
      return wire::ErrorCode::FrameTooLarge;
    case frame::FrameReader::Result::kUnknownType:
      return wire::ErrorCode::UnknownFrameType;
    default:
      return wire::ErrorCode::BadFrame;
  }
}
}  // namespace

Connection::Connection(Broker& broker, uint64_t id, uint32_t max_frame_bytes,
                       size_t max_output_bytes)
    : broker_(broker),
      id_(id),
      max_frame_bytes_(max_frame_bytes),
      max_output_bytes_(max_output_bytes),
      reader_(max_frame_bytes),
      session_(broker, *this) {
  tcp_.data = this;
  write_req_.data = this;
}

void Connection::start() {
  peer_name(&tcp_, &ip_, &peer_);
  uv_tcp_nodelay(&tcp_, 1);
  uv_read_start(stream(), on_alloc, on_read);
}

void Connection::pause_reading() {
  paused_ = true;
  uv_read_stop(stream());
}

void Connection::resume_reading() {
  paused_ = false;
  uv_read_start(stream(), on_alloc, on_read);
  read_frames();
}

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(handle->data);
  // Read straight into the frame reader: no copy between socket and decoder.
  buf->base = reinterpret_cast<char*>(self->reader_.prepare(kReadChunk));
  buf->len = kReadChunk;
}

void Connection::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t*) {
  auto* self = static_cast<Connection*>(stream->data);
  if (n == UV_EOF) return self->on_end_of_input();
  if (n < 0) {
    LOG_INFO("connection %s: read failed: %s", self->peer_.c_str(),
             uv_strerror(int(n)));
    self->close();
    return;
  }
  self->reader_.commit(size_t(n));
  self->read_frames();
}

void Connection::read_frames() {
  while (!closing_ && !close_after_write_ && !paused_) {
    const wire::Frame* frame;
    auto result = reader_.next(&frame);
    if (result == frame::FrameReader::Result::kNeedMore) return;
    if (result != frame::FrameReader::Result::kFrame) {
      LOG_WARN("connection %s: %s", peer_.c_str(), reader_.error().c_str());
      fail(0, code_for(result), reader_.error());
      return;
    }
    session_.on_frame(*frame, reader_.frame_bytes());
  }
}

void Connection::on_end_of_input() {
  uv_read_stop(stream());
  input_ended_ = true;
  // It can no longer ack: what its consumers hold goes to others now.
  session_.end();
  if (owed_replies_ == 0) close_when_written();
}

void Connection::send_owed(flatbuffers::FlatBufferBuilder& fbb) {
  send(fbb);
  --owed_replies_;
  if (input_ended_ && owed_replies_ == 0) close_when_written();
}

void Connection::send(flatbuffers::DetachedBuffer frame) {
  if (closing_ || overflowed_) return;
  if (queued_bytes_ + writing_bytes_ + frame.size() > max_output_bytes_) {
    // The client is not reading, and what piles up is not deliveries (those
    // pause, see congested()) but replies to what it keeps sending. Closing
    // it is the only way to keep memory bounded; its unacked messages go back
    // to other consumers.
    overflowed_ = true;
    return;
  }
  queued_bytes_ += frame.size();
  queued_.push_back(std::move(frame));
}

void Connection::flush() {
  if (closing_) return;
  if (overflowed_) {
    overflowed_ = false;
    queued_.clear();
    queued_bytes_ = 0;
    LOG_WARN("connection %s: over %zu bytes waiting to be written; closing",
             peer_.c_str(), max_output_bytes_);
    fail(0, wire::ErrorCode::LimitExceeded,
         "client is not reading: output buffer limit reached");
    return;
  }
  if (write_in_flight_ || queued_.empty()) return;
  writing_.swap(queued_);
  writing_bytes_ = queued_bytes_;
  queued_bytes_ = 0;
  bufs_.clear();
  for (auto& frame : writing_)
    bufs_.push_back(uv_buf_init(reinterpret_cast<char*>(frame.data()),
                                unsigned(frame.size())));
  int rc = uv_write(&write_req_, stream(), bufs_.data(),
                    unsigned(bufs_.size()), on_write);
  if (rc != 0) {
    LOG_INFO("connection %s: write failed: %s", peer_.c_str(),
             uv_strerror(rc));
    close();
    return;
  }
  write_in_flight_ = true;
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* self = static_cast<Connection*>(req->data);
  self->write_in_flight_ = false;
  self->writing_.clear();
  self->writing_bytes_ = 0;
  self->session_.on_drained();
  if (status < 0) {
    if (status != UV_ECANCELED)
      LOG_INFO("connection %s: write failed: %s", self->peer_.c_str(),
               uv_strerror(status));
    self->close();
    return;
  }
  if (!self->queued_.empty())
    self->flush();
  else if (self->close_after_write_)
    self->close();
}

void Connection::fail(uint64_t request_id, wire::ErrorCode code,
                      const std::string& message) {
  if (closing_ || close_after_write_) return;
  flatbuffers::FlatBufferBuilder fbb(256);
  frame::build_error(fbb, request_id, code, message);
  send(fbb);
  uv_read_stop(stream());
  close_when_written();
}

void Connection::close_when_written() {
  close_after_write_ = true;
  flush();
  if (!write_in_flight_) close();
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  session_.end();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
}

void Connection::on_close(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  self->broker_.forget(*self);  // destroys self
}

}  // namespace tern
