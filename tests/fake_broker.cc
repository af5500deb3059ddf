#include "fake_broker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace tern::test {

using Clock = std::chrono::steady_clock;

FakeBroker::FakeBroker() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 1) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    throw std::runtime_error("fake broker cannot listen");
  }
  port_ = ntohs(addr.sin_port);
}

FakeBroker::~FakeBroker() {
  if (fd_ >= 0) ::close(fd_);
  ::close(listen_fd_);
}

bool FakeBroker::accept_and_hello(std::chrono::milliseconds timeout) {
  pollfd pfd{listen_fd_, POLLIN, 0};
  if (::poll(&pfd, 1, int(timeout.count())) != 1) return false;
  fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd_ < 0) return false;
  const wire::Frame* hello = next(timeout);
  if (hello == nullptr || hello->body_type() != wire::Body::Hello) return false;
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(
      fbb, wire::Body::HelloOk,
      wire::CreateHelloOkDirect(fbb, hello->body_as_Hello()->request_id(), 1,
                                "fake", 1u << 20)
          .Union());
  send(fbb);
  return true;
}

const wire::Frame* FakeBroker::next(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    const wire::Frame* frame = nullptr;
    auto result = reader_.next(&frame);
    if (result == frame::FrameReader::Result::kFrame) return frame;
    if (result != frame::FrameReader::Result::kNeedMore) return nullptr;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return nullptr;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, int(left.count())) != 1) return nullptr;
    uint8_t* room = reader_.prepare(64 * 1024);
    ssize_t n = ::recv(fd_, room, 64 * 1024, 0);
    if (n <= 0) return nullptr;
    reader_.commit(size_t(n));
  }
}

void FakeBroker::send(const flatbuffers::FlatBufferBuilder& fbb) {
  const uint8_t* p = fbb.GetBufferPointer();
  size_t left = fbb.GetSize();
  while (left > 0) {
    ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);
    if (n <= 0) return;  // the client went away; the test will notice
    p += n;
    left -= size_t(n);
  }
}

void FakeBroker::deliver(uint64_t consumer_id, const std::string& topic,
                         uint64_t offset, std::vector<Header> headers,
                         const std::string& payload) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::Header>> hs;
  for (const Header& h : headers) {
    std::vector<uint8_t> value(h.value.begin(), h.value.end());
    hs.push_back(wire::CreateHeaderDirect(fbb, h.name.c_str(), &value));
  }
  std::vector<uint8_t> body(payload.begin(), payload.end());
  std::vector<flatbuffers::Offset<wire::Delivery>> ds = {
      wire::CreateDeliveryDirect(fbb, offset, 1, 0, nullptr, &hs, &body)};
  frame::finish(
      fbb, wire::Body::Deliver,
      wire::CreateDeliverDirect(fbb, consumer_id, topic.c_str(), "", &ds)
          .Union());
  send(fbb);
}

void FakeBroker::deliver_many(uint64_t consumer_id, const std::string& topic,
                              uint64_t first, size_t count) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::Delivery>> ds;
  for (size_t i = 0; i < count; ++i)
    ds.push_back(wire::CreateDeliveryDirect(fbb, first + i, 1));
  frame::finish(
      fbb, wire::Body::Deliver,
      wire::CreateDeliverDirect(fbb, consumer_id, topic.c_str(), "", &ds)
          .Union());
  send(fbb);
}

void FakeBroker::publish_ack(uint64_t request_id, uint64_t offset,
                             wire::ErrorCode error) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<wire::PublishResult> results = {
      wire::PublishResult(offset, error, false, false)};
  frame::finish(
      fbb, wire::Body::PublishAck,
      wire::CreatePublishAckDirect(fbb, request_id, &results).Union());
  send(fbb);
}

void FakeBroker::subscribe_ok(uint64_t request_id, uint64_t consumer_id) {
  flatbuffers::FlatBufferBuilder fbb;
  frame::finish(
      fbb, wire::Body::SubscribeOk,
      wire::CreateSubscribeOkDirect(fbb, request_id, consumer_id, "").Union());
  send(fbb);
}

void FakeBroker::error(uint64_t request_id, wire::ErrorCode code,
                       const std::string& message) {
  flatbuffers::FlatBufferBuilder fbb;
  frame::build_error(fbb, request_id, code, message);
  send(fbb);
}

}  // namespace tern::test
