// libFuzzer target: arbitrary frame sequences against the real broker.
//
// One real tern-broker process (the sanitizer build, $TERN_BROKER) is started
// when the fuzzer starts, on a free loopback port with a temporary data
// directory, --fsync never and --retention-interval 10 (so that topics with
// limits lose messages while a script runs), and serves every input. Each
// input is a script (session_script.h) that this target turns into frames —
// valid ones, wrong ones, broker-only ones, garbage — and sends over a fresh
// TCP connection (and a second one if the script asks), reading the replies
// as it goes and until the connections end.
//
// With $TERN_FUZZ_USERS set, the broker has users and permissions, and
// every Hello logs in (see g_users).
//
// After every input the broker must still be running and must answer Hello
// and Ping on a second connection. Along the way, everything the broker sends
// must be a readable frame, and after an Error that is a connection error the
// broker must close the connection. Any of these failing aborts, so libFuzzer
// keeps the input. When the fuzzer exits, the broker is stopped with SIGTERM
// and must exit 0 with no sanitizer report (leaks, UB) in its stderr; the
// stderr is left at $TERN_BROKER_LOG if that is set.
//
// The broker runs in another process, so libFuzzer's coverage does not reach
// into it. What the broker answered is fed back instead, through libFuzzer's
// extra counters: each (operation sent, reply type, error code) seen counts as
// a feature, so inputs that draw new kinds of answers are kept and mutated.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "frame.h"
#include "session_script.h"

// Reply features for libFuzzer (see the top of this file).
extern "C" {
__attribute__((used, section("__libfuzzer_extra_counters")))
uint8_t tern_reply_features[32768];
}

namespace {

namespace wire = tern::wire;
namespace frame = tern::frame;
namespace session = tern::fuzz::session;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kQuiet = 50ms;  // silence after which a connection is done
// The pools of session_script.h. Wildcard patterns match the first topics.
#define TERN_FUZZ_TOPICS \
  "t.a", "t.b", "t.a.b", "fz", "_inbox.x", "t.a.dlq", "t", "Z_9"
const char* const kTopics[] = {TERN_FUZZ_TOPICS};
const char* const kPatterns[] = {
    TERN_FUZZ_TOPICS, "t.*", "t.>", "*", ">", "*.b", "t.*x", "t.>.a", "t..*"};
#undef TERN_FUZZ_TOPICS
static_assert(sizeof kTopics / sizeof *kTopics == 8, "session_script.h");
static_assert(sizeof kPatterns / sizeof *kPatterns == 16, "session_script.h");
static_assert(session::kBadEmpty == 15, "session_script.h");
const char* const kSubscriptions[] = {"", "s1", "s2", "s-3"};

// With $TERN_FUZZ_TRACE set, what is sent and received goes to stderr (to
// check what a seed or a crash input does).
const bool g_trace = getenv("TERN_FUZZ_TRACE") != nullptr;

// With $TERN_FUZZ_USERS set, the broker has users (kUsersConfig) and every
// Hello logs in as "fuzz", whose permissions allow some of the pools' topics
// and deny others, so that scripts meet NotAuthorized everywhere too.
const bool g_users = getenv("TERN_FUZZ_USERS") != nullptr;
constexpr char kToken[] = "fuzz-token-0123456789abcdef0123456789";
constexpr char kUsersConfig[] =
    "[users.fuzz]\n"
    // kToken's hash, as `tern-broker hash-token` prints it.
    "token = "
    "\"sha256:cbe8e0c8b8efd22a90d64750892023243ab957b8ecb3bbc13d2d23dd8ce1fa12\"\n"
    "publish = { allow = [\"t.>\", \"fz\", \"_inbox.>\"], deny = [\"t.a.b\"] }\n"
    "subscribe = { allow = [\"t.*\", \"fz\", \"Z_9\"], deny = [\"t.b\"] }\n"
    "admin = { allow = [\"t.a\", \"t.a.>\", \"Z_9\"] }\n";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Broker {
  pid_t pid = -1;
  uint16_t port = 0;
  std::string work_dir;
  std::string log_path;
};
Broker g_broker;

std::string broker_log() {
  std::ifstream in(g_broker.log_path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

[[noreturn]] void fail(const std::string& what) {
  std::string log = broker_log();
  if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
  fprintf(stderr, "session_fuzz: %s\n--- broker stderr (tail) ---\n%s\n",
          what.c_str(), log.c_str());
  // libFuzzer's crash handler exits without atexit(): clean up here.
  if (g_broker.pid > 0) {
    kill(g_broker.pid, SIGKILL);
    waitpid(g_broker.pid, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(g_broker.work_dir, ec);
  abort();
}

// --- the script reader (session_script.h) ------------------------------------

class Script {
 public:
  Script(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return at_ >= size_; }

  uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
  uint32_t u32() { return u16() | static_cast<uint32_t>(u16()) << 16; }
  uint64_t u64() { return u32() | static_cast<uint64_t>(u32()) << 32; }
  std::string bytes(size_t n) {
    n = std::min(n, size_ - std::min(at_, size_));
    std::string out(reinterpret_cast<const char*>(data_ + at_), n);
    at_ += n;
    return out;
  }

  template <size_t N>
  std::string name(const char* const (&pool)[N]) {
    uint8_t s = u8();
    if (s < 0xF0) return pool[s % N];
    if (s == 0xFF) return std::string(201, 'a');
    return bytes(u8() % 32);
  }
  std::string blob() {
    uint8_t n = u8();
    if (n < 0xFF) return bytes(n % 64);
    return std::string(u16() % 8192, 'x');
  }
  uint64_t offset() {
    uint8_t s = u8();
    if (s < 0xF0) return s;
    return s == 0xFF ? UINT64_MAX : u64();
  }
  uint64_t consumer() {
    uint8_t s = u8();
    return s < 0xF0 ? s % 6 : u64();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

// --- frames ------------------------------------------------------------------

using Bytes = std::string;

Bytes finish(flatbuffers::FlatBufferBuilder& fbb, wire::Body type,
             flatbuffers::Offset<void> body) {
  frame::finish(fbb, type, body);
  return Bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
               fbb.GetSize());
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> vec(
    flatbuffers::FlatBufferBuilder& fbb, const std::string& s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

Bytes hello_frame(uint32_t version, const std::string& name) {
  flatbuffers::FlatBufferBuilder fbb;
  return finish(
      fbb, wire::Body::Hello,
      wire::CreateHelloDirect(fbb, 1, version, name.c_str(),
                              g_users ? kToken : "")
          .Union());
}

Bytes ping_frame(uint64_t id) {
  flatbuffers::FlatBufferBuilder fbb;
  return finish(fbb, wire::Body::Ping, wire::CreatePing(fbb, id).Union());
}

Bytes publish_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kTopics));
  uint8_t flags = in.u8();
  std::vector<flatbuffers::Offset<wire::Message>> messages;
  for (int i = 0, n = (flags >> 2) % 5; i < n; ++i) {
    uint8_t parts = in.u8();
    std::string key = in.blob();
    std::vector<flatbuffers::Offset<wire::Header>> headers;
    for (int h = 0, k = in.u8() % 4; h < k; ++h) {
      bool has_name = in.u8() & 1;
      std::string name = in.blob();
      std::string value = in.blob();
      auto name_offset = has_name ? fbb.CreateString(name) : 0;
      headers.push_back(wire::CreateHeader(fbb, name_offset, vec(fbb, value)));
    }
    std::string payload = in.blob();
    std::string id;
    if (parts & 8) {
      // Mostly from a few ids, so that the broker sees some of them again.
      uint8_t s = in.u8();
      id = s < 0xF0 ? "id-" + std::to_string(s % 8) : in.blob();
    }
    auto key_offset = parts & 1 ? vec(fbb, key) : 0;
    auto headers_offset = parts & 2 ? fbb.CreateVector(headers) : 0;
    auto payload_offset = parts & 4 ? vec(fbb, payload) : 0;
    uint32_t ttl = 0;
    if (parts & 16) ttl = std::max<uint32_t>(in.u8(), 1);
    auto id_offset = parts & 8 ? fbb.CreateString(id) : 0;
    messages.push_back(wire::CreateMessage(fbb, key_offset, headers_offset,
                                           payload_offset, id_offset, ttl));
  }
  auto list = fbb.CreateVector(messages);
  wire::PublishBuilder publish(fbb);
  publish.add_request_id(id);
  publish.add_topic(topic);
  publish.add_messages(list);
  // add_confirm leaves out a value equal to the default unless forced.
  if (flags & 2) fbb.ForceDefaults(true);
  publish.add_confirm(flags & 1);
  auto body = publish.Finish();
  fbb.ForceDefaults(false);
  return finish(fbb, wire::Body::Publish, body.Union());
}

struct Start {
  wire::StartPosition position;
  uint64_t offset = 0;
  int64_t time_ms = 0;
};

Start start_position(Script& in) {
  uint8_t s = in.u8();
  if (s >= 0xF0) return {static_cast<wire::StartPosition>(s)};
  Start start{static_cast<wire::StartPosition>(s % 4)};
  start.offset = (s >> 2) % 4;
  if ((s >> 4) % 2) start.time_ms = now_ms() - 1000;
  return start;
}

Bytes subscribe_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  std::string topic_name = in.name(kPatterns);
  auto topic = fbb.CreateString(topic_name);
  auto name = fbb.CreateString(in.name(kSubscriptions));
  Start start = start_position(in);
  uint8_t prefetch_kind = in.u8() % 4;
  uint32_t prefetch = prefetch_kind == 1   ? 0
                      : prefetch_kind == 2 ? 1 + in.u8() % 8
                      : prefetch_kind == 3 ? in.u32()
                                           : 1000;
  uint8_t t = in.u8();
  uint8_t timeout_kind = (t & 3) % 3;
  uint32_t timeout = timeout_kind == 1   ? 1 + in.u8()
                     : timeout_kind == 2 ? in.u32()
                                         : 0;
  const uint32_t kMaxDeliveries[] = {16, 1, 2, 0};
  uint32_t max_deliveries = kMaxDeliveries[(t >> 2) & 3];
  flatbuffers::Offset<flatbuffers::String> dead_letter = 0;
  switch ((t >> 4) & 3) {
    case 1:
      dead_letter = fbb.CreateString("t.b");
      break;
    case 2:
      dead_letter = fbb.CreateString(topic_name);
      break;
    case 3:
      dead_letter = fbb.CreateString("_inbox.x");
      break;
  }
  return finish(fbb, wire::Body::Subscribe,
                wire::CreateSubscribe(
                    fbb, id, topic, name, start.position, prefetch, timeout,
                    start.offset, start.time_ms, max_deliveries, dead_letter)
                    .Union());
}

Bytes unsubscribe_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  uint64_t consumer = in.consumer();
  return finish(fbb, wire::Body::Unsubscribe,
                wire::CreateUnsubscribe(fbb, id, consumer).Union());
}

std::vector<wire::OffsetRange> offset_ranges(Script& in, int n) {
  std::vector<wire::OffsetRange> ranges;
  for (int i = 0; i < n; ++i) {
    uint64_t first = in.offset();
    uint64_t last = in.offset();
    ranges.emplace_back(first, last);
  }
  return ranges;
}

Bytes ack_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t consumer = in.consumer();
  uint8_t n = in.u8();
  auto ranges = offset_ranges(in, (n & 7) % 5);
  auto topic = n & 8 ? fbb.CreateString(in.name(kTopics)) : 0;
  auto list = fbb.CreateVectorOfStructs(ranges);
  return finish(fbb, wire::Body::Ack,
                wire::CreateAck(fbb, consumer, list, topic).Union());
}

Bytes nack_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t consumer = in.consumer();
  uint8_t f = in.u8();
  auto ranges = offset_ranges(in, (f & 7) % 5);
  uint32_t delay = 0;
  switch ((f >> 5) & 3) {
    case 1:
      delay = in.u8();
      break;
    case 2:
      delay = in.u32();
      break;
    case 3:
      delay = 5;
      break;
  }
  auto topic = f & 8 ? fbb.CreateString(in.name(kTopics)) : 0;
  auto list = fbb.CreateVectorOfStructs(ranges);
  return finish(
      fbb, wire::Body::Nack,
      wire::CreateNack(fbb, consumer, list, delay, f & 16, topic).Union());
}

Bytes list_topics_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = in.u8() & 1 ? fbb.CreateString(in.name(kPatterns)) : 0;
  return finish(fbb, wire::Body::ListTopics,
                wire::CreateListTopics(fbb, id, topic).Union());
}

Bytes reset_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kTopics));
  auto name = fbb.CreateString(in.name(kSubscriptions));
  Start start = start_position(in);
  uint64_t offset = in.offset();
  uint8_t t = in.u8();
  int64_t time_ms = t == 0     ? 0
                    : t < 0xF0 ? now_ms() - 10 * int64_t(t)
                               : static_cast<int64_t>(in.u64());
  // ResetSubscription.start defaults to Earliest: Latest must be forced in.
  fbb.ForceDefaults(true);
  auto body = wire::CreateResetSubscription(fbb, id, topic, name,
                                            start.position, offset, time_ms);
  fbb.ForceDefaults(false);
  return finish(fbb, wire::Body::ResetSubscription, body.Union());
}

// The settings of kCreateTopic and kAlterTopic, from `flags` on (see
// session_script.h); none unless bit 1 of flags is set.
flatbuffers::Offset<wire::TopicSettings> topic_settings(
    Script& in, flatbuffers::FlatBufferBuilder& fbb, uint8_t flags) {
  uint8_t age_kind = in.u8() % 4;
  uint64_t max_messages = 0, max_bytes = 0, max_age = 0;
  switch ((flags >> 4) & 3) {
    case 1:
      max_messages = 1;
      break;
    case 2:
      max_messages = 3;
      break;
    case 3:
      max_messages = in.u8();
      break;
  }
  switch (flags >> 6) {
    case 1:
      max_bytes = 1;
      break;
    case 2:
      max_bytes = 300;
      break;
    case 3:
      max_bytes = in.u16();
      break;
  }
  switch (age_kind) {
    case 1:
      max_age = 1;
      break;
    case 2:
      max_age = 50;
      break;
    case 3:
      max_age = in.u16();
      break;
  }
  if (!(flags & 2)) return 0;
  return wire::CreateTopicSettings(fbb, max_age, max_bytes, max_messages,
                                   flags & 4, flags & 8);
}

Bytes create_topic_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kTopics));
  uint8_t flags = in.u8();
  auto settings = topic_settings(in, fbb, flags);
  return finish(
      fbb, wire::Body::CreateTopic,
      wire::CreateCreateTopic(fbb, id, topic, settings, flags & 1).Union());
}

Bytes alter_topic_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kTopics));
  auto settings = topic_settings(in, fbb, in.u8());
  return finish(fbb, wire::Body::AlterTopic,
                wire::CreateAlterTopic(fbb, id, topic, settings).Union());
}

Bytes delete_topic_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kPatterns));
  return finish(fbb, wire::Body::DeleteTopic,
                wire::CreateDeleteTopic(fbb, id, topic).Union());
}

Bytes delete_subscription_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kTopics));
  auto name = fbb.CreateString(in.name(kSubscriptions));
  return finish(fbb, wire::Body::DeleteSubscription,
                wire::CreateDeleteSubscription(fbb, id, topic, name).Union());
}

// What kSettleLast settles: the last Deliver a connection received.
struct LastDeliver {
  bool seen = false;
  uint64_t consumer = 0;
  std::string topic;
  uint64_t first = 0, last = 0;
};

Bytes settle_last_frame(uint8_t f, const LastDeliver& d) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<wire::OffsetRange> ranges = {wire::OffsetRange(d.first, d.last)};
  auto list = fbb.CreateVectorOfStructs(ranges);
  auto topic = f & 8 ? 0 : fbb.CreateString(d.topic);
  if (f & 1)
    return finish(
        fbb, wire::Body::Nack,
        wire::CreateNack(fbb, d.consumer, list, f & 4 ? 5 : 0, f & 2, topic)
            .Union());
  return finish(fbb, wire::Body::Ack,
                wire::CreateAck(fbb, d.consumer, list, topic).Union());
}

Bytes broker_only_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  switch (in.u8() % 12) {
    case 0:
      return finish(fbb, wire::Body::HelloOk,
                    wire::CreateHelloOkDirect(fbb, 1, 1, "x", 64).Union());
    case 1:
      return finish(fbb, wire::Body::Pong, wire::CreatePong(fbb, 1).Union());
    case 2:
      return finish(
          fbb, wire::Body::Error,
          wire::CreateErrorDirect(fbb, 1, wire::ErrorCode::Internal, "x")
              .Union());
    case 3: {
      std::vector<wire::PublishResult> results = {
          wire::PublishResult(0, wire::ErrorCode::None, false, false)};
      return finish(fbb, wire::Body::PublishAck,
                    wire::CreatePublishAckDirect(fbb, 1, &results).Union());
    }
    case 4:
      return finish(fbb, wire::Body::SubscribeOk,
                    wire::CreateSubscribeOkDirect(fbb, 1, 1, "s1").Union());
    case 5:
      return finish(fbb, wire::Body::UnsubscribeOk,
                    wire::CreateUnsubscribeOk(fbb, 1).Union());
    case 6: {
      std::vector<flatbuffers::Offset<wire::Delivery>> deliveries = {
          wire::CreateDelivery(fbb, 0, 1, 0)};
      return finish(
          fbb, wire::Body::Deliver,
          wire::CreateDeliverDirect(fbb, 1, "t.a", "s1", &deliveries).Union());
    }
    case 7: {
      std::vector<flatbuffers::Offset<wire::TopicInfo>> topics = {
          wire::CreateTopicInfoDirect(fbb, "t.a", 0, 1)};
      return finish(fbb, wire::Body::TopicList,
                    wire::CreateTopicListDirect(fbb, 1, &topics).Union());
    }
    case 8:
      return finish(fbb, wire::Body::ResetOk,
                    wire::CreateResetOk(fbb, 1, 0).Union());
    case 9:
      return finish(fbb, wire::Body::CreateTopicOk,
                    wire::CreateCreateTopicOk(fbb, 1, true).Union());
    case 10:
      return finish(fbb, wire::Body::DeleteOk,
                    wire::CreateDeleteOk(fbb, 1).Union());
    default:
      return finish(fbb, wire::Body::ConsumerClosed,
                    wire::CreateConsumerClosedDirect(
                        fbb, 1, wire::ErrorCode::Deleted, "x")
                        .Union());
  }
}

Bytes garbage_frame(Script& in) {
  std::string body = in.bytes(in.u8());
  uint32_t n = static_cast<uint32_t>(body.size());
  Bytes out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out + body;
}

Bytes bad_union_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  auto type = static_cast<wire::Body>(in.u8());
  auto body = wire::CreatePing(fbb, 1).Union();
  return finish(fbb, type, body);
}

// --- the connection ----------------------------------------------------------

int connect_broker() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(g_broker.port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool is_connection_error(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::BadFrame:
    case wire::ErrorCode::FrameTooLarge:
    case wire::ErrorCode::UnknownFrameType:
    case wire::ErrorCode::HelloRequired:
    case wire::ErrorCode::UnsupportedVersion:
    case wire::ErrorCode::NotAllowed:
      return true;
    default:
      return false;
  }
}

class Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool closed() const { return closed_; }
  bool connection_error() const { return connection_error_; }
  void set_last_op(uint8_t op) { last_op_ = op; }
  const LastDeliver& last_deliver() const { return last_deliver_; }
  // False once the broker closed or a send failed: nothing more is sent.
  bool usable() const { return !closed_ && !send_failed_; }
  bool send_frame(const Bytes& bytes) {
    if (g_trace) trace_sent(bytes);
    if (usable() && !send_bytes(bytes)) send_failed_ = true;
    return usable();
  }

  bool send_bytes(const Bytes& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      // Reading while sending keeps both sides' buffers from filling up.
      pollfd pfd{fd_, POLLOUT | POLLIN, 0};
      if (poll(&pfd, 1, 1000) <= 0) return false;
      if (pfd.revents & POLLIN) read_some();
      if (closed_) return false;
      if (!(pfd.revents & POLLOUT)) continue;
      ssize_t n = send(fd_, bytes.data() + at, bytes.size() - at,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      at += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until `deadline`, the close, the Pong with id *pong_id (if given),
  // or, if `quiet` is nonzero, that long without a byte.
  void read_until(Clock::time_point deadline, const uint64_t* pong_id,
                  std::chrono::milliseconds quiet = kQuiet) {
    auto quiet_until = quiet.count() > 0 ? Clock::now() + quiet : deadline;
    while (!closed_ && !(pong_id && pong_seen_ == *pong_id)) {
      auto until = std::min(deadline, quiet_until);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - Clock::now());
      if (left.count() <= 0) return;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      if (read_some() && quiet.count() > 0) quiet_until = Clock::now() + quiet;
    }
  }
  bool pong_seen(uint64_t id) const { return pong_seen_ == id; }

  // Closing with a reset instead of a FIN.
  void reset() {
    linger hard{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd_);
    fd_ = -1;
    closed_ = true;  // by us: nothing more can be read
  }
  void half_close() { shutdown(fd_, SHUT_WR); }

 private:
  // True if bytes arrived.
  bool read_some() {
    uint8_t* room = reader_.prepare(64 * 1024);
    ssize_t n = recv(fd_, room, 64 * 1024, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n <= 0) {
      closed_ = true;  // EOF or reset: the broker is done with us
      return false;
    }
    reader_.commit(static_cast<size_t>(n));
    for (;;) {
      const wire::Frame* f = nullptr;
      auto result = reader_.next(&f);
      if (result == frame::FrameReader::Result::kNeedMore) break;
      if (result != frame::FrameReader::Result::kFrame)
        fail("the broker sent an unreadable frame: " + reader_.error());
      on_reply(*f);
    }
    return true;
  }

  void trace_sent(const Bytes& bytes) {
    const char* what = "bytes";
    if (bytes.size() >= 8) {
      auto f = flatbuffers::GetSizePrefixedRoot<wire::Frame>(bytes.data());
      flatbuffers::Verifier v(
          reinterpret_cast<const uint8_t*>(bytes.data()) + 4, bytes.size() - 4,
          64, 1000000, /*check_alignment=*/false);
      if (v.VerifyBuffer<wire::Frame>(nullptr))
        what = frame::body_name(f->body_type());
    }
    fprintf(stderr, "  fd %d > %s (%zu bytes)%s\n", fd_, what, bytes.size(),
            usable() ? "" : " [not sent]");
  }

  void on_reply(const wire::Frame& f) {
    if (g_trace) {
      std::string detail;
      if (f.body_type() == wire::Body::Error && f.body_as_Error()->message())
        detail = f.body_as_Error()->message()->str();
      if (f.body_type() == wire::Body::Deliver) {
        const auto* d = f.body_as_Deliver();
        detail = "consumer " + std::to_string(d->consumer_id()) + " " +
                 (d->topic() ? d->topic()->str() : "") + " " +
                 std::to_string(d->messages() ? d->messages()->size() : 0) +
                 " messages";
      }
      fprintf(stderr, "  fd %d < %s %s\n", fd_, frame::body_name(f.body_type()),
              detail.c_str());
    }
    auto type = static_cast<unsigned>(f.body_type());
    unsigned code = 0;
    if (f.body_type() == wire::Body::Error) {
      auto error = f.body_as_Error()->code();
      code = static_cast<unsigned>(error);
      if (is_connection_error(error)) connection_error_ = true;
    }
    if (f.body_type() == wire::Body::Pong)
      pong_seen_ = f.body_as_Pong()->request_id();
    if (f.body_type() == wire::Body::ConsumerClosed)
      code = static_cast<unsigned>(f.body_as_ConsumerClosed()->code());
    if (f.body_type() == wire::Body::Deliver) {
      const auto* d = f.body_as_Deliver();
      if (d->messages() && d->messages()->size() > 0) {
        last_deliver_.seen = true;
        last_deliver_.consumer = d->consumer_id();
        last_deliver_.topic = d->topic() ? d->topic()->str() : "";
        last_deliver_.first = d->messages()->Get(0)->offset();
        last_deliver_.last =
            d->messages()->Get(d->messages()->size() - 1)->offset();
      }
    }
    // (operation, reply type, error code) in [0, 24576), (previous reply
    // type, reply type) in [24576, 25600).
    static_assert(session::kOpCount < 24, "room for every operation");
    unsigned feature = ((last_op_ % 24) * 32 + (type & 31)) * 32 + (code & 31);
    unsigned sequence = 24576 + previous_type_ * 32 + (type & 31);
    for (unsigned index : {feature, sequence}) {
      if (tern_reply_features[index] < 255) ++tern_reply_features[index];
    }
    previous_type_ = type & 31;
  }

  int fd_;
  frame::FrameReader reader_;
  bool closed_ = false;
  bool send_failed_ = false;
  bool connection_error_ = false;
  LastDeliver last_deliver_;
  uint64_t pong_seen_ = 0;
  uint8_t last_op_ = 0;
  unsigned previous_type_ = 0;
};

// --- the broker process ------------------------------------------------------

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fprintf(stderr, "session_fuzz: no free port: %s\n", strerror(errno));
    exit(1);
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Says Hello and Ping on a fresh connection; true if both are answered.
bool broker_answers(std::chrono::milliseconds timeout) {
  int fd = connect_broker();
  if (fd < 0) return false;
  Connection probe(fd);
  const uint64_t kProbe = 0x70726f6265;
  if (!probe.send_bytes(hello_frame(frame::kProtocolVersion, "probe") +
                        ping_frame(kProbe)))
    return false;
  probe.read_until(Clock::now() + timeout, &kProbe, 0ms);
  return probe.pong_seen(kProbe);
}

bool start_broker(const std::string& binary, const std::string& data_dir) {
  g_broker.port = free_port();
  std::string listen = "127.0.0.1:" + std::to_string(g_broker.port);
  std::vector<std::string> argv = {
      binary,   "--listen", listen,  "--data",
      data_dir, "--fsync",  "never", "--retention-interval",
      "10",     "--http",   "off"};
  if (g_users) {
    std::string config = g_broker.work_dir + "/users.toml";
    std::ofstream(config) << kUsersConfig;
    argv.insert(argv.end(), {"--config", config});
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int log = open(g_broker.log_path.c_str(),
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return false;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // The broker must not outlive a fuzzer that crashed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(log, 1);
    dup2(log, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(log);
  g_broker.pid = pid;
  auto deadline = Clock::now() + 30s;  // a sanitizer build starts slowly
  while (Clock::now() < deadline) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_broker.pid = -1;
      return false;
    }
    int fd = connect_broker();
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  fail("the broker did not accept connections within 30 s");
}

void stop_broker() {
  if (g_broker.pid <= 0) return;
  kill(g_broker.pid, SIGTERM);
  int status = 0;
  pid_t got = 0;
  auto deadline = Clock::now() + 30s;
  while ((got = waitpid(g_broker.pid, &status, WNOHANG)) == 0 &&
         Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  if (got == 0) {
    kill(g_broker.pid, SIGKILL);
    waitpid(g_broker.pid, &status, 0);
  }
  g_broker.pid = -1;

  std::string log = broker_log();
  bool clean = got != 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  bool sanitizer = log.find("ERROR: AddressSanitizer") != std::string::npos ||
                   log.find("ERROR: LeakSanitizer") != std::string::npos ||
                   log.find("runtime error:") != std::string::npos;
  std::error_code ec;
  std::filesystem::remove_all(g_broker.work_dir, ec);
  if (!clean || sanitizer) {
    fprintf(stderr, "session_fuzz: the broker %s%s; stderr:\n%s\n",
            clean ? "exited 0" : "did not exit 0 on SIGTERM",
            sanitizer ? " and its stderr holds a sanitizer report" : "",
            log.c_str());
    _exit(1);
  }
  fprintf(stderr,
          "session_fuzz: the broker exited 0 on SIGTERM with no sanitizer "
          "report\n");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* binary = getenv("TERN_BROKER");
  std::string broker = binary && *binary ? binary : "build-fuzz/tern-broker";
  char pattern[] = "/tmp/tern-session-fuzz-XXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    fprintf(stderr, "session_fuzz: mkdtemp: %s\n", strerror(errno));
    exit(1);
  }
  g_broker.work_dir = pattern;
  const char* log = getenv("TERN_BROKER_LOG");
  g_broker.log_path = log && *log ? log : g_broker.work_dir + "/broker.stderr";
  unlink(g_broker.log_path.c_str());  // a log of this run only
  bool started = false;
  for (int attempt = 0; attempt < 3 && !started; ++attempt)
    started = start_broker(broker, g_broker.work_dir + "/data");
  if (!started) fail("the broker (" + broker + ") exited during startup");
  atexit(stop_broker);
  fprintf(stderr, "session_fuzz: broker %s pid %d on 127.0.0.1:%u\n",
          broker.c_str(), g_broker.pid, g_broker.port);
  return 0;
}

namespace {

// A connection to the broker, greeted with a valid Hello if `hello`.
std::unique_ptr<Connection> open_connection(bool hello) {
  int fd = connect_broker();
  if (fd < 0) fail("cannot connect to the broker");
  auto c = std::make_unique<Connection>(fd);
  if (hello) {
    c->set_last_op(session::kOpCount);
    c->send_frame(hello_frame(frame::kProtocolVersion, "fuzz"));
  }
  return c;
}

// Reads replies on every open connection for `ms`.
void pause(std::unique_ptr<Connection> (&connections)[2],
           std::chrono::milliseconds ms) {
  auto deadline = Clock::now() + ms;
  do {
    for (auto& c : connections) {
      if (c && !c->closed())
        c->read_until(std::min(deadline, Clock::now() + 2ms), nullptr, 0ms);
    }
  } while (Clock::now() < deadline);
}

// Ends `c` the way the script says, and checks that a connection error was
// followed by the broker's close.
void end_connection(Connection& c, session::Ending ending) {
  auto deadline = Clock::now() + 2s;
  switch (ending) {
    case session::kHalfClose:
      c.half_close();
      c.read_until(deadline, nullptr);
      break;
    case session::kReset:
      c.reset();
      break;
    default: {
      const uint64_t kLast = 0x656e64;
      if (!c.closed()) c.send_frame(ping_frame(kLast));
      c.read_until(deadline, &kLast);
    }
  }
  if (c.connection_error() && !c.closed()) {
    // The broker promised to close after a connection error.
    c.read_until(Clock::now() + 2s, nullptr, 0ms);
    if (!c.closed())
      fail("the connection stayed open after a connection error");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script in(data, size);
  uint8_t header = in.u8();
  auto ending = static_cast<session::Ending>((header >> 1) & 3);

  {
    std::unique_ptr<Connection> connections[2];
    connections[0] = open_connection(header & session::kSayHello);
    int current = 0;
    for (int ops = 0; !in.done() && ops < 64; ++ops) {
      uint8_t op = in.u8() % session::kOpCount;
      if (op == session::kSwitch) {
        uint8_t c = in.u8();
        current = c & 1;
        auto& target = connections[current];
        if (target && (c & 2)) {
          if (c & 4) target->reset();
          target.reset();
        }
        if (!target) target = open_connection(true);
        continue;
      }
      if (op == session::kPause) {
        pause(connections, std::chrono::milliseconds(in.u8() % 20));
        continue;
      }
      Connection& c = *connections[current];
      c.set_last_op(op);
      Bytes bytes;
      switch (op) {
        case session::kHello: {
          uint8_t v = in.u8();
          uint32_t version = v < 0xF0 ? frame::kProtocolVersion : in.u32();
          bytes = hello_frame(version, in.blob());
          break;
        }
        case session::kPing:
          bytes = ping_frame(in.u8());
          break;
        case session::kPublish:
          bytes = publish_frame(in);
          break;
        case session::kSubscribe:
          bytes = subscribe_frame(in);
          break;
        case session::kUnsubscribe:
          bytes = unsubscribe_frame(in);
          break;
        case session::kAck:
          bytes = ack_frame(in);
          break;
        case session::kBrokerOnly:
          bytes = broker_only_frame(in);
          break;
        case session::kGarbage:
          bytes = garbage_frame(in);
          break;
        case session::kRawBytes:
          bytes = in.bytes(in.u8());
          break;
        case session::kBadUnion:
          bytes = bad_union_frame(in);
          break;
        case session::kNack:
          bytes = nack_frame(in);
          break;
        case session::kListTopics:
          bytes = list_topics_frame(in);
          break;
        case session::kResetSubscription:
          bytes = reset_frame(in);
          break;
        case session::kCreateTopic:
          bytes = create_topic_frame(in);
          break;
        case session::kAlterTopic:
          bytes = alter_topic_frame(in);
          break;
        case session::kDeleteTopic:
          bytes = delete_topic_frame(in);
          break;
        case session::kDeleteSubscription:
          bytes = delete_subscription_frame(in);
          break;
        case session::kSettleLast: {
          uint8_t f = in.u8();
          if (!c.last_deliver().seen) continue;
          bytes = settle_last_frame(f, c.last_deliver());
          break;
        }
      }
      c.send_frame(bytes);
    }

    // The other connection first, then the current one.
    for (int i : {1 - current, current}) {
      if (connections[i]) end_connection(*connections[i], ending);
    }
  }

  int status;
  if (waitpid(g_broker.pid, &status, WNOHANG) == g_broker.pid) {
    g_broker.pid = -1;
    fail("the broker died");
  }
  if (!broker_answers(5s)) fail("the broker no longer answers Hello and Ping");
  return 0;
}
