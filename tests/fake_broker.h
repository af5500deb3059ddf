// FakeBroker: a broker stand-in for tests of the client's own logic. It
// listens on a free loopback port, accepts one client, and lets a test read
// the client's frames and answer them by hand, exactly as scripted. Every
// wait is bounded.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "frame.h"
#include "tern/client.h"

namespace tern::test {

class FakeBroker {
 public:
  FakeBroker();  // throws std::runtime_error if it cannot listen
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Accepts the client and answers its Hello. False on timeout.
  bool accept_and_hello(std::chrono::milliseconds timeout);

  // The next frame from the client; nullptr once it closed or at the
  // timeout. Valid until the next call.
  const wire::Frame* next(std::chrono::milliseconds timeout);

  void send(const flatbuffers::FlatBufferBuilder& fbb);
  // Delivers one message to `consumer_id` with `headers` and `payload`.
  void deliver(uint64_t consumer_id, const std::string& topic, uint64_t offset,
               std::vector<Header> headers, const std::string& payload);
  // Delivers offsets [first, first + count) in one Deliver frame.
  void deliver_many(uint64_t consumer_id, const std::string& topic,
                    uint64_t first, size_t count);
  void publish_ack(uint64_t request_id, uint64_t offset,
                   wire::ErrorCode error = wire::ErrorCode::None);
  void subscribe_ok(uint64_t request_id, uint64_t consumer_id);
  void error(uint64_t request_id, wire::ErrorCode code,
             const std::string& message);

 private:
  int listen_fd_ = -1;
  int fd_ = -1;
  uint16_t port_ = 0;
  frame::FrameReader reader_;
};

}  // namespace tern::test
