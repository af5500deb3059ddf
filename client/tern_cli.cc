// tern — the command-line client.
//
//   tern [--server HOST:PORT] pub TOPIC [MESSAGE...]
//   tern [--server HOST:PORT] sub TOPIC [--subscription NAME] [--count N]
//        [--from POSITION] [--timeout SECONDS] [--prefetch N]
//   tern [--server HOST:PORT] topics list | info TOPIC | delete TOPIC
//   tern [--server HOST:PORT] topics create TOPIC [--max-age DURATION]
//        [--max-bytes SIZE] [--max-messages N] [--work-queue]
//        [--dead-letter-expired]
//   tern [--server HOST:PORT] topics alter TOPIC [--max-age DURATION|none]
//        [--max-bytes SIZE|none] [--max-messages N|none]
//        [--[no-]dead-letter-expired]
//   tern [--server HOST:PORT] subs reset TOPIC NAME --to POSITION
//   tern [--server HOST:PORT] subs delete TOPIC NAME
//   tern [--server HOST:PORT] request TOPIC MESSAGE [--timeout DURATION]
//   tern [--server HOST:PORT] reply TOPIC --exec CMD [--subscription NAME]
//        [--count N]
//
// Exit status: 0 on success, 1 when the broker or the connection fails, 2 for
// a bad command line. Errors go to stderr as "tern: <what went wrong>".
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tern/client.h"

namespace {

constexpr const char* kDefaultServer = "127.0.0.1:7411";
// Pipelining for `pub` from stdin: messages in flight, and per frame.
constexpr size_t kPubWindow = 1000;
constexpr size_t kPubBatch = 100;

const char kMainUsage[] =
    "usage: tern [--server HOST:PORT] COMMAND [ARGS...]\n"
    "\n"
    "Commands:\n"
    "  pub TOPIC [MESSAGE...]  publish messages (one per line from stdin if\n"
    "                          none are given) and wait for their confirms\n"
    "  sub TOPIC [OPTIONS]     print messages as they arrive, one per line\n"
    "  topics list             list the topics\n"
    "  topics info TOPIC       show a topic, its settings and subscriptions\n"
    "  topics create TOPIC [OPTIONS]\n"
    "                          create a topic with retention settings\n"
    "  topics alter TOPIC OPTIONS\n"
    "                          change a topic's retention settings\n"
    "  topics delete TOPIC     delete a topic, its messages and subscriptions\n"
    "  subs reset TOPIC NAME --to POSITION\n"
    "                          move a durable subscription\n"
    "  subs delete TOPIC NAME  delete a durable subscription\n"
    "  request TOPIC MESSAGE   send a request and print the reply\n"
    "  reply TOPIC --exec CMD  answer requests with the output of CMD\n"
    "\n"
    "Options:\n"
    "  --server HOST:PORT  broker address (default: $TERN_SERVER, else "
    "127.0.0.1:7411)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Run 'tern COMMAND --help' for the options of a command.\n";

const char kPubUsage[] =
    "usage: tern [--server HOST:PORT] pub TOPIC [MESSAGE...]\n"
    "\n"
    "Publishes each MESSAGE to TOPIC. With no MESSAGE, publishes each line of\n"
    "standard input (without its newline). Exits 0 once the broker has\n"
    "confirmed every message as stored, 1 if any was not.\n"
    "\n"
    "Options:\n"
    "  --server HOST:PORT  broker address (default: $TERN_SERVER, else "
    "127.0.0.1:7411)\n"
    "  -h, --help          show this help\n"
    "  --                  treat everything after it as messages\n";

const char kSubUsage[] =
    "usage: tern [--server HOST:PORT] sub TOPIC [OPTIONS]\n"
    "\n"
    "Prints each message's payload on its own line and acknowledges it once\n"
    "printed. Runs until --count messages were printed, or until --timeout\n"
    "seconds pass without a new message, or forever.\n"
    "\n"
    "TOPIC may be a pattern (ephemeral only): '*' matches one '.'-separated\n"
    "token, a final '>' one or more, e.g. 'orders.*' or 'orders.>'. Each line\n"
    "is then the message's topic, a tab, and the payload.\n"
    "\n"
    "Options:\n"
    "  --subscription NAME     durable subscription to attach to (created if\n"
    "                          new); without it the subscription is ephemeral\n"
    "  --from POSITION         where a new subscription starts: latest\n"
    "                          (default), earliest, offset:N, or time:T with\n"
    "                          T in Unix milliseconds\n"
    "  --count N               stop after N messages\n"
    "  --timeout SECONDS       stop after SECONDS with no new message\n"
    "  --prefetch N            max unacknowledged messages in flight "
    "(default: 1000)\n"
    "  --server HOST:PORT      broker address (default: $TERN_SERVER, else "
    "127.0.0.1:7411)\n"
    "  -h, --help              show this help\n";

const char kTopicsUsage[] =
    "usage: tern [--server HOST:PORT] topics list\n"
    "       tern [--server HOST:PORT] topics info TOPIC\n"
    "       tern [--server HOST:PORT] topics create TOPIC [OPTIONS]\n"
    "       tern [--server HOST:PORT] topics alter TOPIC OPTIONS\n"
    "       tern [--server HOST:PORT] topics delete TOPIC\n"
    "\n"
    "list: one line per topic: name, first and next offset, subscriptions.\n"
    "info: the topic's offsets, messages and bytes stored, settings, and per\n"
    "subscription its consumers, ack floor, lag (committed messages not yet\n"
    "acked), pending deliveries, messages waiting for redelivery and messages\n"
    "retention removed before they were acked (skipped).\n"
    "create: creates TOPIC with the settings below (none: keep everything).\n"
    "Creating a topic that exists with the same settings succeeds; with\n"
    "other settings it fails.\n"
    "alter: changes the settings given and keeps the others; 'none' lifts\n"
    "a limit. Retention applies new limits within a second. --work-queue is\n"
    "fixed at creation.\n"
    "delete: deletes TOPIC with its messages and subscriptions; their\n"
    "consumers are ended.\n"
    "\n"
    "Options of create and alter:\n"
    "  --max-age DURATION      delete messages older than this: a whole\n"
    "                          number with ms, s, m, h or d, e.g. 24h\n"
    "  --max-bytes SIZE        keep the stored messages under this size: a\n"
    "                          whole number of bytes, or with B, KiB, MiB,\n"
    "                          GiB, TiB (powers of 1024) or KB, MB, GB, TB\n"
    "                          (powers of 1000), e.g. 1GiB\n"
    "  --max-messages N        keep at most N messages\n"
    "  --work-queue            delete a message once every durable\n"
    "                          subscription acknowledged it\n"
    "  --dead-letter-expired   send messages whose time to live ran out to\n"
    "                          the dead-letter topic\n"
    "  --no-dead-letter-expired\n"
    "                          let them go without (the default)\n";

const char kSubsUsage[] =
    "usage: tern [--server HOST:PORT] subs reset TOPIC NAME --to POSITION\n"
    "       tern [--server HOST:PORT] subs delete TOPIC NAME\n"
    "\n"
    "reset: moves the durable subscription NAME of TOPIC: messages before\n"
    "POSITION count as acknowledged, messages from it on are delivered\n"
    "(again). POSITION: earliest, latest, offset:N, or time:T (Unix\n"
    "milliseconds).\n"
    "delete: deletes the durable subscription NAME of TOPIC and its\n"
    "position; its consumers are ended.\n";

const char kRequestUsage[] =
    "usage: tern [--server HOST:PORT] request TOPIC MESSAGE [--timeout "
    "DURATION]\n"
    "\n"
    "Publishes MESSAGE to TOPIC as a request and prints the reply's payload.\n"
    "Exits 1 if no reply comes within the timeout, or if the responder\n"
    "failed.\n"
    "\n"
    "Options:\n"
    "  --timeout DURATION      how long to wait for the reply: a whole number\n"
    "                          with ms, s, m, h or d (default: 5s)\n"
    "  --server HOST:PORT      broker address (default: $TERN_SERVER, else "
    "127.0.0.1:7411)\n"
    "  -h, --help              show this help\n";

const char kReplyUsage[] =
    "usage: tern [--server HOST:PORT] reply TOPIC --exec CMD [OPTIONS]\n"
    "\n"
    "Answers the requests sent to TOPIC (e.g. by 'tern request'). For each\n"
    "one, runs CMD with /bin/sh -c, the request's payload on its standard\n"
    "input, and replies with its standard output (less one trailing\n"
    "newline). If CMD exits with a status other than 0, the requester gets\n"
    "the error \"command exited with status N\". Runs until --count requests\n"
    "are answered, or until interrupted (SIGINT, SIGTERM).\n"
    "\n"
    "Options:\n"
    "  --exec CMD              the command that answers each request\n"
    "  --subscription NAME     durable subscription the responders share\n"
    "                          (default: responders)\n"
    "  --count N               exit after answering N requests\n"
    "  --server HOST:PORT      broker address (default: $TERN_SERVER, else "
    "127.0.0.1:7411)\n"
    "  -h, --help              show this help\n";

// A bad command line: reported with the usage, exit status 2.
struct UsageError {
  std::string message;
  const char* usage;
};

struct PubArgs {
  std::string topic;
  std::vector<std::string> messages;  // empty: read stdin
};

struct SubArgs {
  std::string topic;
  std::string subscription;
  tern::StartPosition start = tern::StartPosition::kLatest;
  uint64_t start_at = 0;  // the offset or time (Unix ms) of offset:/time:
  uint64_t count = 0;     // 0: no limit
  std::optional<std::chrono::milliseconds> timeout;
  uint32_t prefetch = 1000;
};

// Walks argv, splitting "--name=value" and taking "--name value".
class ArgReader {
 public:
  ArgReader(int argc, char** argv) : args_(argv + 1, argv + argc) {}

  bool done() const { return i_ >= args_.size(); }
  const std::string& peek() const { return args_[i_]; }
  std::string take() { return args_[i_++]; }

  // If the next argument is option `name` (alone or as name=value), consumes
  // it and its value and returns true.
  bool option(const char* name, std::string* value, const char* usage) {
    const std::string& arg = args_[i_];
    size_t n = std::strlen(name);
    if (arg.compare(0, n, name) != 0) return false;
    if (arg.size() == n) {
      if (i_ + 1 >= args_.size()) {
        throw UsageError{std::string("option ") + name + " needs a value",
                         usage};
      }
      *value = args_[i_ + 1];
      i_ += 2;
      return true;
    }
    if (arg[n] != '=') return false;
    *value = arg.substr(n + 1);
    i_ += 1;
    return true;
  }

  // If the next argument is the flag `name` (which takes no value), consumes
  // it and returns true.
  bool flag(const char* name) {
    if (args_[i_] != name) return false;
    i_ += 1;
    return true;
  }

 private:
  std::vector<std::string> args_;
  size_t i_ = 0;
};

bool is_help(const std::string& arg) { return arg == "-h" || arg == "--help"; }

bool is_option(const std::string& arg) {
  return arg.size() > 1 && arg[0] == '-';
}

uint64_t parse_count(const std::string& name, const std::string& value,
                     uint64_t max, const char* usage, uint64_t min = 1) {
  errno = 0;
  char* end = nullptr;
  unsigned long long n = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || value[0] == '-' || *end != '\0' || errno != 0 ||
      n < min || n > max) {
    throw UsageError{name + " must be a whole number from " +
                         std::to_string(min) + " to " +
                         std::to_string(max) + ", not '" + value + "'",
                     usage};
  }
  return n;
}

std::chrono::milliseconds parse_seconds(const std::string& name,
                                        const std::string& value,
                                        const char* usage) {
  char* end = nullptr;
  double seconds = std::strtod(value.c_str(), &end);
  // Up to about ten years; beyond that "forever" is the better spelling.
  if (value.empty() || *end != '\0' || !(seconds >= 0) || seconds > 3e8) {
    throw UsageError{name + " must be a number of seconds, not '" + value + "'",
                     usage};
  }
  return std::chrono::milliseconds(int64_t(seconds * 1000 + 0.5));
}

// Splits "24h" into 24 and "h". False if it does not start with a whole
// number that fits in 64 bits.
bool split_number(const std::string& value, uint64_t* number,
                  std::string* unit) {
  size_t digits = 0;
  while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9')
    ++digits;
  if (digits == 0) return false;
  errno = 0;
  unsigned long long n = std::strtoull(value.substr(0, digits).c_str(), nullptr, 10);
  if (errno != 0) return false;
  *number = n;
  *unit = value.substr(digits);
  return true;
}

// A whole number with a unit: ms, s, m, h or d. At least 1 ms, at most about
// 290 million years (what fits in int64 milliseconds).
std::chrono::milliseconds parse_duration(const std::string& name,
                                         const std::string& value,
                                         const char* usage) {
  static const struct {
    const char* unit;
    uint64_t ms;
  } kUnits[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000},
                {"d", 86'400'000}};
  uint64_t n = 0;
  std::string unit;
  if (split_number(value, &n, &unit)) {
    for (const auto& u : kUnits) {
      if (unit != u.unit) continue;
      if (n == 0 || n > uint64_t(std::numeric_limits<int64_t>::max()) / u.ms)
        break;
      return std::chrono::milliseconds(int64_t(n * u.ms));
    }
  }
  throw UsageError{name + " must be a positive whole number with a unit (ms, "
                          "s, m, h or d), e.g. 30s or 24h, not '" +
                       value + "'",
                   usage};
}

// A whole number of bytes, optionally with a unit: B, KiB, MiB, GiB, TiB
// (powers of 1024) or KB, MB, GB, TB (powers of 1000). At least 1 byte.
uint64_t parse_size(const std::string& name, const std::string& value,
                    const char* usage) {
  static const struct {
    const char* unit;
    uint64_t bytes;
  } kUnits[] = {{"", 1},
                {"B", 1},
                {"KiB", 1ull << 10},
                {"MiB", 1ull << 20},
                {"GiB", 1ull << 30},
                {"TiB", 1ull << 40},
                {"KB", 1'000},
                {"MB", 1'000'000},
                {"GB", 1'000'000'000},
                {"TB", 1'000'000'000'000}};
  uint64_t n = 0;
  std::string unit;
  if (split_number(value, &n, &unit)) {
    for (const auto& u : kUnits) {
      if (unit != u.unit) continue;
      if (n == 0 || n > std::numeric_limits<uint64_t>::max() / u.bytes) break;
      return n * u.bytes;
    }
  }
  throw UsageError{name + " must be a positive whole number of bytes, "
                          "optionally with a unit (B, KiB, MiB, GiB, TiB, "
                          "KB, MB, GB, TB), e.g. 512MiB, not '" +
                       value + "'",
                   usage};
}

// The largest unit that states `ms` exactly: 86400000 -> "1d", 1500 ->
// "1500ms". 0 -> "none" (no limit).
std::string format_duration(std::chrono::milliseconds ms) {
  int64_t n = ms.count();
  if (n == 0) return "none";
  static const struct {
    const char* unit;
    int64_t ms;
  } kUnits[] = {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000},
                {"s", 1000}};
  for (const auto& u : kUnits) {
    if (n % u.ms == 0) return std::to_string(n / u.ms) + u.unit;
  }
  return std::to_string(n) + "ms";
}

// The same for sizes, in powers of 1024: 1073741824 -> "1GiB".
std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "none";
  static const struct {
    const char* unit;
    uint64_t bytes;
  } kUnits[] = {{"TiB", 1ull << 40},
                {"GiB", 1ull << 30},
                {"MiB", 1ull << 20},
                {"KiB", 1ull << 10}};
  for (const auto& u : kUnits) {
    if (bytes % u.bytes == 0) return std::to_string(bytes / u.bytes) + u.unit;
  }
  return std::to_string(bytes) + "B";
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

// --- pub ---

// Batches messages into publish_async() frames. Confirmed messages are counted
// in `confirmed`, which the caller declares before the Client so that it
// outlives every callback, including those run while the Client closes.
class Publisher {
 public:
  Publisher(tern::Client& client, std::string topic,
            std::atomic<uint64_t>& confirmed)
      : client_(client), topic_(std::move(topic)), confirmed_(confirmed) {
    batch_.reserve(kPubBatch);
  }

  void add(std::string payload) {
    batch_.push_back(tern::OutgoingMessage{std::move(payload), {}, {}, {}});
    if (batch_.size() == kPubBatch) send();
  }

  void send() {
    if (batch_.empty()) return;
    client_.publish_async(
        topic_, std::move(batch_),
        [&confirmed = confirmed_](const std::vector<tern::PublishResult>& rs) {
          for (const auto& r : rs) {
            if (r.error == tern::ErrorCode::kNone) {
              confirmed.fetch_add(1);
            }
          }
        });
    batch_.clear();
    batch_.reserve(kPubBatch);
  }

  // Sends what is left and waits for every confirm; throws the first failure.
  uint64_t finish() {
    send();
    client_.flush();
    return confirmed_.load();
  }

 private:
  tern::Client& client_;
  std::string topic_;
  std::vector<tern::OutgoingMessage> batch_;
  std::atomic<uint64_t>& confirmed_;  // counted on the client's reader thread
};

// Feeds stdin to `publisher`, one message per line. Lines are sent as soon as
// a read() ends, so interactive input goes out line by line while piped input
// fills whole batches.
void publish_stdin(Publisher& publisher) {
  std::vector<char> buf(64 * 1024);
  std::string partial;
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("cannot read standard input: ") +
                               std::strerror(errno));
    }
    if (n == 0) break;
    const char* p = buf.data();
    const char* end = p + n;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
      if (nl == nullptr) {
        partial.append(p, end);
        break;
      }
      partial.append(p, nl);
      publisher.add(std::move(partial));
      partial.clear();
      p = nl + 1;
    }
    publisher.send();
  }
  // A last line without a newline is still a message.
  if (!partial.empty()) publisher.add(std::move(partial));
}

int run_pub(const std::string& server, const PubArgs& args) {
  tern::ClientOptions options;
  options.client_name = "tern-cli";
  options.max_unconfirmed = kPubWindow;
  std::atomic<uint64_t> confirmed{0};
  auto client = tern::Client::connect(server, options);
  Publisher publisher(*client, args.topic, confirmed);
  if (args.messages.empty()) {
    publish_stdin(publisher);
  } else {
    for (const std::string& m : args.messages) publisher.add(m);
  }
  uint64_t n = publisher.finish();
  std::fprintf(stderr, "published %llu message%s to %s\n",
               static_cast<unsigned long long>(n), n == 1 ? "" : "s",
               args.topic.c_str());
  return 0;
}

// --- sub ---

// The subscription and start position the arguments name.
tern::SubscribeOptions subscribe_options(const SubArgs& args) {
  tern::SubscribeOptions options;
  options.topic = args.topic;
  options.subscription = args.subscription;
  options.start = args.start;
  options.start_offset = args.start_at;
  options.start_time = std::chrono::system_clock::time_point(
      std::chrono::milliseconds(args.start_at));
  options.prefetch = args.prefetch;
  return options;
}

int run_sub(const std::string& server, const SubArgs& args) {
  tern::ClientOptions options;
  options.client_name = "tern-cli";
  auto client = tern::Client::connect(server, options);
  tern::SubscribeOptions so = subscribe_options(args);
  tern::Subscription sub = client->subscribe(so);

  uint64_t printed = 0;
  while (args.count == 0 || printed < args.count) {
    auto m = sub.next(args.timeout.value_or(std::chrono::hours(1)));
    if (!m) {
      if (args.timeout) break;
      continue;  // no --timeout: wait forever
    }
    // Acked only once it is really out, so a failed write means redelivery.
    std::string prefix = sub.wildcard() ? m->topic + '\t' : std::string();
    if (std::fwrite(prefix.data(), 1, prefix.size(), stdout) != prefix.size() ||
        std::fwrite(m->payload.data(), 1, m->payload.size(), stdout) !=
            m->payload.size() ||
        std::fputc('\n', stdout) == EOF || std::fflush(stdout) != 0) {
      throw std::runtime_error(
          std::string("cannot write to standard output: ") +
          std::strerror(errno));
    }
    sub.ack(*m);
    ++printed;
  }
  // Hands anything prefetched but not printed straight back to the broker.
  sub.unsubscribe();
  return 0;
}

// --- request and reply ---

struct RequestArgs {
  std::string topic;
  std::string message;
  std::chrono::milliseconds timeout{5000};
};

struct ReplyArgs {
  std::string topic;
  std::string exec;  // the shell command
  std::string subscription = "responders";
  uint64_t count = 0;  // 0: until interrupted
};

int run_request(const std::string& server, const RequestArgs& args) {
  tern::ClientOptions options;
  options.client_name = "tern-cli";
  auto client = tern::Client::connect(server, options);
  tern::Message reply = client->request(args.topic, args.message, args.timeout);
  if (std::fwrite(reply.payload.data(), 1, reply.payload.size(), stdout) !=
          reply.payload.size() ||
      std::fputc('\n', stdout) == EOF || std::fflush(stdout) != 0) {
    throw std::runtime_error(std::string("cannot write to standard output: ") +
                             std::strerror(errno));
  }
  return 0;
}

// Runs `command` with /bin/sh -c, `input` on its standard input, and returns
// its standard output. Its stderr is ours. Throws std::runtime_error, which
// the Responder sends back as tern-error, if it cannot be run or does not
// exit with status 0.
std::string run_shell(const std::string& command, const std::string& input) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(in[0]);
    ::close(in[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(err));
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec, since the parent
    // has other threads (the client's reader). dup2 clears O_CLOEXEC on 0
    // and 1; SIGPIPE, ignored by the parent, is the default again.
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::signal(SIGPIPE, SIG_DFL);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(in[0]);
  ::close(out[1]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    throw std::runtime_error(std::string("cannot run command: fork: ") +
                             std::strerror(fork_errno));
  }

  // Feed stdin and drain stdout together: a command that writes a lot before
  // reading everything would otherwise block us both.
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) {
    ::close(in[1]);
    in[1] = -1;
  }
  std::string output;
  char buf[64 * 1024];
  while (out[0] >= 0) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    if (::poll(fds, in[1] >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in[1] >= 0 && fds[1].revents != 0) {
      ssize_t n = ::write(in[1], input.data() + written, input.size() - written);
      if (n > 0) written += size_t(n);
      // Done, or the command stopped reading (EPIPE): it gets EOF either way.
      if (written == input.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(in[1]);
        in[1] = -1;
      }
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n > 0) {
        output.append(buf, size_t(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(out[0]);
        out[0] = -1;
      }
    }
  }
  if (in[1] >= 0) ::close(in[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    throw std::runtime_error("command killed by signal " +
                             std::to_string(WTERMSIG(status)));
  }
  if (WEXITSTATUS(status) != 0) {
    throw std::runtime_error("command exited with status " +
                             std::to_string(WEXITSTATUS(status)));
  }
  // Like $(...) in the shell, but only one newline: "echo hi" replies "hi".
  if (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

int run_reply(const std::string& server, const ReplyArgs& args) {
  // Stop between requests on SIGINT / SIGTERM, so the one being handled is
  // answered and acked rather than left to time out.
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  // A command that exits without reading its input must not kill us.
  ::signal(SIGPIPE, SIG_IGN);

  tern::ClientOptions options;
  options.client_name = "tern-cli";
  auto client = tern::Client::connect(server, options);
  tern::Responder responder = client->respond(
      args.topic,
      [&args](const tern::Message& request) {
        return run_shell(args.exec, request.payload);
      },
      args.subscription);
  uint64_t served = 0;
  // Short waits, so a signal is noticed soon.
  while (!g_stop && (args.count == 0 || served < args.count)) {
    if (responder.serve_one(std::chrono::milliseconds(200))) ++served;
  }
  std::fprintf(stderr, "answered %llu request%s on %s\n",
               (unsigned long long)served, served == 1 ? "" : "s",
               args.topic.c_str());
  return 0;
}

// --- command line ---

struct Command {
  std::string name;
  PubArgs pub;
  SubArgs sub;
  RequestArgs request;
  ReplyArgs reply;
  // "list", "info", "create", "alter" or "delete"
  std::string topics_action;
  std::string topics_name;  // for all but "list"
  // The settings options of "create" and "alter", in order, each as the
  // change it makes: create applies them to no limits, alter to the
  // topic's own settings.
  std::vector<std::function<void(tern::TopicSettings&)>> setting_changes;
  std::string subs_action;  // "reset" or "delete"
  // subs: topic and subscription in sub.topic / sub.subscription; for reset
  // the position in sub.start / sub.start_at.
  bool reset_position_given = false;
};

int run_subs(const std::string& server, const Command& command) {
  const SubArgs& args = command.sub;
  auto client = tern::Client::connect(server);
  if (command.subs_action == "delete") {
    client->delete_subscription(args.topic, args.subscription);
    std::printf("deleted subscription %s on %s\n", args.subscription.c_str(),
                args.topic.c_str());
    return 0;
  }
  uint64_t offset = client->reset_subscription(subscribe_options(args));
  std::printf("subscription %s on %s now starts at offset %llu\n",
              args.subscription.c_str(), args.topic.c_str(),
              (unsigned long long)offset);
  return 0;
}

// Parses a start position: earliest, latest, offset:N or time:UNIX_MS.
void parse_position(const std::string& flag, const std::string& value,
                    const char* usage, SubArgs* args) {
  if (value == "earliest") {
    args->start = tern::StartPosition::kEarliest;
  } else if (value == "latest") {
    args->start = tern::StartPosition::kLatest;
  } else if (value.rfind("offset:", 0) == 0) {
    args->start = tern::StartPosition::kOffset;
    args->start_at =
        parse_count(flag + " offset:", value.substr(7),
                    std::numeric_limits<uint64_t>::max(), usage, 0);
  } else if (value.rfind("time:", 0) == 0) {
    args->start = tern::StartPosition::kTime;
    args->start_at =
        parse_count(flag + " time:", value.substr(5),
                    std::numeric_limits<int64_t>::max(), usage, 0);
  } else {
    throw UsageError{flag + " must be earliest, latest, offset:N or "
                            "time:UNIX_MS, not '" +
                         value + "'",
                     usage};
  }
}

int run_topics(const std::string& server, const Command& command) {
  auto client = tern::Client::connect(server);
  const std::string& name = command.topics_name;
  if (command.topics_action == "create") {
    tern::TopicSettings settings;
    for (const auto& change : command.setting_changes) change(settings);
    bool created = client->create_topic(name, settings);
    std::printf(created ? "created topic %s\n"
                        : "topic %s exists already, with these settings\n",
                name.c_str());
    return 0;
  }
  if (command.topics_action == "alter") {
    // Read, change, write: the options not given keep their values.
    auto topics = client->topics(name);
    if (topics.empty()) {
      std::fprintf(stderr, "tern: no topic named %s\n", name.c_str());
      return 1;
    }
    tern::TopicSettings settings = topics[0].settings;
    for (const auto& change : command.setting_changes) change(settings);
    client->alter_topic(name, settings);
    std::printf("altered topic %s\n", name.c_str());
    return 0;
  }
  if (command.topics_action == "delete") {
    client->delete_topic(name);
    std::printf("deleted topic %s\n", name.c_str());
    return 0;
  }
  auto topics = client->topics(name);
  if (command.topics_action == "list") {
    for (const auto& t : topics) {
      std::printf("%s\tfirst offset %llu\tnext offset %llu\t%zu subscriptions\n",
                  t.name.c_str(), (unsigned long long)t.first_offset,
                  (unsigned long long)t.next_offset, t.subscriptions.size());
    }
    return 0;
  }
  if (topics.empty()) {
    std::fprintf(stderr, "tern: no topic named %s\n",
                 command.topics_name.c_str());
    return 1;
  }
  const auto& t = topics[0];
  std::printf("topic %s\n  first offset %llu, next offset %llu\n",
              t.name.c_str(), (unsigned long long)t.first_offset,
              (unsigned long long)t.next_offset);
  std::printf(
      "  messages %llu, bytes %llu, on disk about %llu bytes, temporary %s\n",
      (unsigned long long)t.messages, (unsigned long long)t.bytes,
      (unsigned long long)t.disk_bytes, yes_no(t.temporary));
  std::printf(
      "  max age %s, max bytes %s, max messages %s, work queue %s, "
      "dead-letter expired %s\n",
      format_duration(t.settings.max_age).c_str(),
      format_size(t.settings.max_bytes).c_str(),
      t.settings.max_messages == 0
          ? "none"
          : std::to_string(t.settings.max_messages).c_str(),
      yes_no(t.settings.work_queue), yes_no(t.settings.dead_letter_expired));
  for (const auto& s : t.subscriptions) {
    std::printf(
        "  subscription %s\n    consumers %u, ack floor %llu, lag %llu, "
        "pending %u, waiting for redelivery %u, skipped %llu\n    ack "
        "timeout %u ms, max deliveries %u, dead letters to %s\n",
        s.name.empty() ? "(ephemeral)" : s.name.c_str(), s.consumers,
        (unsigned long long)s.ack_floor, (unsigned long long)s.lag, s.pending,
        s.waiting_redelivery, (unsigned long long)s.skipped, s.ack_timeout_ms,
        s.max_deliveries, s.dead_letter_topic.c_str());
    if (s.dead_letter_blocked > 0)
      std::printf("    %u held back: cannot dead-letter: %s\n",
                  s.dead_letter_blocked, s.dead_letter_error.c_str());
  }
  return 0;
}

// Parses argv into `command`, setting *server if --server is given. Returns
// false if help was asked for (and printed).
bool parse(int argc, char** argv, std::string* server, Command* command) {
  ArgReader in(argc, argv);
  std::string value;

  // Global options, up to the command.
  while (!in.done() && is_option(in.peek())) {
    if (is_help(in.peek())) {
      std::fputs(kMainUsage, stdout);
      return false;
    }
    if (in.option("--server", server, kMainUsage)) continue;
    throw UsageError{"unknown option '" + in.peek() + "'", kMainUsage};
  }
  if (in.done()) throw UsageError{"missing command", kMainUsage};
  command->name = in.take();
  const char* usage;
  if (command->name == "pub") {
    usage = kPubUsage;
  } else if (command->name == "sub") {
    usage = kSubUsage;
  } else if (command->name == "topics") {
    usage = kTopicsUsage;
  } else if (command->name == "subs") {
    usage = kSubsUsage;
  } else if (command->name == "request") {
    usage = kRequestUsage;
  } else if (command->name == "reply") {
    usage = kReplyUsage;
  } else if (command->name == "help") {
    std::fputs(kMainUsage, stdout);
    return false;
  } else {
    throw UsageError{"unknown command '" + command->name + "'", kMainUsage};
  }

  // The command's options and arguments, in any order.
  std::vector<std::string> positional;
  bool options_done = false;
  while (!in.done()) {
    if (options_done || !is_option(in.peek())) {
      positional.push_back(in.take());
      continue;
    }
    if (in.peek() == "--") {
      in.take();
      options_done = true;
      continue;
    }
    if (is_help(in.peek())) {
      std::fputs(usage, stdout);
      return false;
    }
    if (in.option("--server", server, usage)) continue;
    if (command->name == "sub") {
      SubArgs& sub = command->sub;
      if (in.option("--subscription", &sub.subscription, usage)) {
        if (sub.subscription.empty()) {
          throw UsageError{"--subscription needs a name", usage};
        }
        continue;
      }
      if (in.option("--count", &value, usage)) {
        sub.count = parse_count("--count", value,
                                std::numeric_limits<uint64_t>::max(), usage);
        continue;
      }
      if (in.option("--prefetch", &value, usage)) {
        sub.prefetch = uint32_t(parse_count(
            "--prefetch", value, std::numeric_limits<uint32_t>::max(), usage));
        continue;
      }
      if (in.option("--timeout", &value, usage)) {
        sub.timeout = parse_seconds("--timeout", value, usage);
        continue;
      }
      if (in.option("--from", &value, usage)) {
        parse_position("--from", value, usage, &sub);
        continue;
      }
    }
    if (command->name == "subs" && in.option("--to", &value, usage)) {
      parse_position("--to", value, usage, &command->sub);
      command->reset_position_given = true;
      continue;
    }
    if (command->name == "topics") {
      using Settings = tern::TopicSettings;
      std::function<void(Settings&)> change;
      // "none" lifts a limit (for alter; with create it is the default).
      if (in.option("--max-age", &value, usage)) {
        auto age = value == "none" ? std::chrono::milliseconds(0)
                                   : parse_duration("--max-age", value, usage);
        change = [age](Settings& s) { s.max_age = age; };
      } else if (in.option("--max-bytes", &value, usage)) {
        uint64_t bytes =
            value == "none" ? 0 : parse_size("--max-bytes", value, usage);
        change = [bytes](Settings& s) { s.max_bytes = bytes; };
      } else if (in.option("--max-messages", &value, usage)) {
        uint64_t n = value == "none"
                         ? 0
                         : parse_count("--max-messages", value,
                                       std::numeric_limits<uint64_t>::max(),
                                       usage);
        change = [n](Settings& s) { s.max_messages = n; };
      } else if (in.flag("--work-queue")) {
        change = [](Settings& s) { s.work_queue = true; };
      } else if (in.flag("--dead-letter-expired")) {
        change = [](Settings& s) { s.dead_letter_expired = true; };
      } else if (in.flag("--no-dead-letter-expired")) {
        change = [](Settings& s) { s.dead_letter_expired = false; };
      }
      if (change) {
        command->setting_changes.push_back(std::move(change));
        continue;
      }
    }
    if (command->name == "request" && in.option("--timeout", &value, usage)) {
      command->request.timeout = parse_duration("--timeout", value, usage);
      if (command->request.timeout.count() > UINT32_MAX) {
        throw UsageError{"--timeout must be at most 49d", usage};
      }
      continue;
    }
    if (command->name == "reply") {
      ReplyArgs& reply = command->reply;
      if (in.option("--exec", &reply.exec, usage)) {
        if (reply.exec.empty()) throw UsageError{"--exec needs a command", usage};
        continue;
      }
      if (in.option("--subscription", &reply.subscription, usage)) {
        if (reply.subscription.empty()) {
          throw UsageError{"--subscription needs a name", usage};
        }
        continue;
      }
      if (in.option("--count", &value, usage)) {
        reply.count = parse_count("--count", value,
                                  std::numeric_limits<uint64_t>::max(), usage);
        continue;
      }
    }
    throw UsageError{"unknown option '" + in.peek() + "'", usage};
  }

  if (command->name == "topics") {
    if (positional.empty()) {
      throw UsageError{"missing list, info, create, alter or delete", usage};
    }
    const std::string& action = command->topics_action = positional[0];
    bool takes_settings = action == "create" || action == "alter";
    if (!command->setting_changes.empty() && !takes_settings) {
      throw UsageError{
          "retention options go with 'topics create' and 'topics alter' only",
          usage};
    }
    if (action == "alter" && command->setting_changes.empty()) {
      throw UsageError{"'topics alter' needs at least one option", usage};
    }
    if (action == "list" && positional.size() == 1) return true;
    if ((action == "info" || takes_settings || action == "delete") &&
        positional.size() == 2) {
      command->topics_name = positional[1];
      return true;
    }
    throw UsageError{"want 'topics list', 'topics info TOPIC', 'topics "
                     "create TOPIC [OPTIONS]', 'topics alter TOPIC OPTIONS' "
                     "or 'topics delete TOPIC'",
                     usage};
  }
  if (command->name == "subs") {
    if (positional.size() != 3 ||
        (positional[0] != "reset" && positional[0] != "delete")) {
      throw UsageError{"want 'subs reset TOPIC NAME --to POSITION' or 'subs "
                       "delete TOPIC NAME'",
                       usage};
    }
    command->subs_action = positional[0];
    if (command->subs_action == "reset" && !command->reset_position_given)
      throw UsageError{"missing --to POSITION", usage};
    if (command->subs_action == "delete" && command->reset_position_given)
      throw UsageError{"--to goes with 'subs reset' only", usage};
    command->sub.topic = positional[1];
    command->sub.subscription = positional[2];
    return true;
  }
  if (positional.empty()) throw UsageError{"missing TOPIC", usage};
  if (command->name == "request") {
    if (positional.size() != 2) {
      throw UsageError{positional.size() < 2
                           ? "missing MESSAGE"
                           : "unexpected argument '" + positional[2] + "'",
                       usage};
    }
    command->request.topic = positional[0];
    command->request.message = positional[1];
    return true;
  }
  if (command->name == "reply") {
    if (positional.size() > 1) {
      throw UsageError{"unexpected argument '" + positional[1] + "'", usage};
    }
    if (command->reply.exec.empty()) throw UsageError{"missing --exec CMD", usage};
    command->reply.topic = positional[0];
    return true;
  }
  if (command->name == "pub") {
    command->pub.topic = positional[0];
    command->pub.messages.assign(positional.begin() + 1, positional.end());
  } else {
    if (positional.size() > 1) {
      throw UsageError{"unexpected argument '" + positional[1] + "'", usage};
    }
    command->sub.topic = positional[0];
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server;
  Command command;
  try {
    if (!parse(argc, argv, &server, &command)) return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "tern: %s\n\n%s", e.message.c_str(), e.usage);
    return 2;
  }
  if (server.empty()) {
    const char* env = std::getenv("TERN_SERVER");
    server = (env != nullptr && *env != '\0') ? env : kDefaultServer;
  }

  try {
    if (command.name == "pub") return run_pub(server, command.pub);
    if (command.name == "topics") return run_topics(server, command);
    if (command.name == "subs") return run_subs(server, command);
    if (command.name == "request") return run_request(server, command.request);
    if (command.name == "reply") return run_reply(server, command.reply);
    return run_sub(server, command.sub);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern: %s\n", e.what());
    return 1;
  }
}
