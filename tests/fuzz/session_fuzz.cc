// libFuzzer target: arbitrary frame sequences against the real broker.
//
// One real tern-broker process (the sanitizer build, $TERN_BROKER) is started
// when the fuzzer starts, on a free loopback port with a temporary data
// directory and --fsync never, and serves every input. Each input is a script
// (session_script.h) that this target turns into frames — valid ones, wrong
// ones, broker-only ones, garbage — and sends over a fresh TCP connection,
// reading the replies as it goes and until the connection ends.
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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "frame.h"
#include "session_script.h"

// Reply features for libFuzzer (see the top of this file).
extern "C" {
__attribute__((used, section("__libfuzzer_extra_counters")))
uint8_t tern_reply_features[4096];
}

namespace {

namespace wire = tern::wire;
namespace frame = tern::frame;
namespace session = tern::fuzz::session;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kQuiet = 50ms;  // silence after which a connection is done
const char* const kTopics[] = {"fz", "fz.b", "fz-c", "Z_9"};
const char* const kSubscriptions[] = {"", "s1", "s2", "s-3"};

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
      wire::CreateHelloDirect(fbb, 1, version, name.c_str(), "").Union());
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
    auto id_offset = parts & 8 ? fbb.CreateString(id) : 0;
    messages.push_back(wire::CreateMessage(fbb, key_offset, headers_offset,
                                           payload_offset, id_offset));
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

Bytes subscribe_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  auto topic = fbb.CreateString(in.name(kTopics));
  auto name = fbb.CreateString(in.name(kSubscriptions));
  uint8_t start = in.u8();
  if (start < 0xF0) start %= 2;
  uint8_t prefetch_kind = in.u8() % 4;
  uint32_t prefetch = prefetch_kind == 1   ? 0
                      : prefetch_kind == 2 ? 1 + in.u8() % 8
                      : prefetch_kind == 3 ? in.u32()
                                           : 1000;
  uint8_t timeout_kind = in.u8() % 3;
  uint32_t timeout = timeout_kind == 1   ? 1 + in.u8()
                     : timeout_kind == 2 ? in.u32()
                                         : 0;
  return finish(fbb, wire::Body::Subscribe,
                wire::CreateSubscribe(fbb, id, topic, name,
                                      static_cast<wire::StartPosition>(start),
                                      prefetch, timeout)
                    .Union());
}

Bytes unsubscribe_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = in.u8();
  uint64_t consumer = in.consumer();
  return finish(fbb, wire::Body::Unsubscribe,
                wire::CreateUnsubscribe(fbb, id, consumer).Union());
}

Bytes ack_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t consumer = in.consumer();
  std::vector<wire::OffsetRange> ranges;
  for (int i = 0, n = in.u8() % 5; i < n; ++i) {
    uint64_t first = in.offset();
    uint64_t last = in.offset();
    ranges.emplace_back(first, last);
  }
  auto list = fbb.CreateVectorOfStructs(ranges);
  return finish(fbb, wire::Body::Ack,
                wire::CreateAck(fbb, consumer, list).Union());
}

Bytes broker_only_frame(Script& in) {
  flatbuffers::FlatBufferBuilder fbb;
  switch (in.u8() % 7) {
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
          wire::PublishResult(0, wire::ErrorCode::None, false)};
      return finish(fbb, wire::Body::PublishAck,
                    wire::CreatePublishAckDirect(fbb, 1, &results).Union());
    }
    case 4:
      return finish(fbb, wire::Body::SubscribeOk,
                    wire::CreateSubscribeOkDirect(fbb, 1, 1, "s1").Union());
    case 5:
      return finish(fbb, wire::Body::UnsubscribeOk,
                    wire::CreateUnsubscribeOk(fbb, 1).Union());
    default: {
      std::vector<flatbuffers::Offset<wire::Delivery>> deliveries = {
          wire::CreateDelivery(fbb, 0, 1, 0)};
      return finish(
          fbb, wire::Body::Deliver,
          wire::CreateDeliverDirect(fbb, 1, "fz", "s1", &deliveries).Union());
    }
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

  void on_reply(const wire::Frame& f) {
    auto type = static_cast<unsigned>(f.body_type());
    unsigned code = 0;
    if (f.body_type() == wire::Body::Error) {
      auto error = f.body_as_Error()->code();
      code = static_cast<unsigned>(error);
      if (is_connection_error(error)) connection_error_ = true;
    }
    if (f.body_type() == wire::Body::Pong)
      pong_seen_ = f.body_as_Pong()->request_id();
    // (operation, reply type, error code) in [0, 3072), (previous reply
    // type, reply type) in [3072, 3328).
    unsigned feature = ((last_op_ % 12) * 16 + (type & 15)) * 16 + (code & 15);
    unsigned sequence = 3072 + previous_type_ * 16 + (type & 15);
    for (unsigned index : {feature, sequence}) {
      if (tern_reply_features[index] < 255) ++tern_reply_features[index];
    }
    previous_type_ = type & 15;
  }

  int fd_;
  frame::FrameReader reader_;
  bool closed_ = false;
  bool connection_error_ = false;
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
  std::vector<std::string> argv = {binary,   "--listen", listen, "--data",
                                   data_dir, "--fsync",  "never"};
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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script in(data, size);
  uint8_t header = in.u8();
  auto ending = static_cast<session::Ending>((header >> 1) & 3);

  int fd = connect_broker();
  if (fd < 0) fail("cannot connect to the broker");
  {
    Connection c(fd);
    bool open = true;
    if (header & session::kSayHello) {
      c.set_last_op(session::kOpCount);
      open = c.send_bytes(hello_frame(frame::kProtocolVersion, "fuzz"));
    }
    for (int ops = 0; open && !in.done() && ops < 64; ++ops) {
      uint8_t op = in.u8() % session::kOpCount;
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
        case session::kPause:
          c.read_until(Clock::now() + std::chrono::milliseconds(in.u8() % 20),
                       nullptr);
          continue;
      }
      open = c.send_bytes(bytes);
    }

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
        if (!c.closed()) c.send_bytes(ping_frame(kLast));
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

  int status;
  if (waitpid(g_broker.pid, &status, WNOHANG) == g_broker.pid) {
    g_broker.pid = -1;
    fail("the broker died");
  }
  if (!broker_answers(5s)) fail("the broker no longer answers Hello and Ping");
  return 0;
}
