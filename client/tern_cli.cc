// tern — the command-line client.
//
//   tern [--server HOST:PORT] pub TOPIC [MESSAGE...]
//   tern [--server HOST:PORT] sub TOPIC [--subscription NAME] [--count N]
//        [--from POSITION] [--timeout SECONDS] [--prefetch N]
//   tern [--server HOST:PORT] topics list | info TOPIC
//   tern [--server HOST:PORT] subs reset TOPIC NAME --to POSITION
//
// Exit status: 0 on success, 1 when the broker or the connection fails, 2 for
// a bad command line. Errors go to stderr as "tern: <what went wrong>".
#include <errno.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
    "  topics info TOPIC       show a topic and its subscriptions\n"
    "  subs reset TOPIC NAME --to POSITION\n"
    "                          move a durable subscription\n"
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
    "\n"
    "list: one line per topic: name, first and next offset, subscriptions.\n"
    "info: the topic's offsets, and per subscription its consumers, ack\n"
    "floor, lag (committed messages not yet acked), pending deliveries and\n"
    "messages waiting for redelivery.\n";

const char kSubsUsage[] =
    "usage: tern [--server HOST:PORT] subs reset TOPIC NAME --to POSITION\n"
    "\n"
    "Moves the durable subscription NAME of TOPIC: messages before POSITION\n"
    "count as acknowledged, messages from it on are delivered (again).\n"
    "POSITION: earliest, latest, offset:N, or time:T (Unix milliseconds).\n";

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
    if (std::fwrite(m->payload.data(), 1, m->payload.size(), stdout) !=
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

// --- command line ---

struct Command {
  std::string name;
  PubArgs pub;
  SubArgs sub;
  std::string topics_action;  // "list" or "info"
  std::string topics_name;    // for "info"
  // subs reset: topic and subscription in sub.topic / sub.subscription, the
  // position in sub.start / sub.start_at.
  bool reset_position_given = false;
};

int run_subs_reset(const std::string& server, const SubArgs& args) {
  auto client = tern::Client::connect(server);
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
  auto topics = client->topics(command.topics_name);
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
  for (const auto& s : t.subscriptions) {
    std::printf(
        "  subscription %s\n    consumers %u, ack floor %llu, lag %llu, "
        "pending %u, waiting for redelivery %u\n    ack timeout %u ms, max "
        "deliveries %u, dead letters to %s\n",
        s.name.empty() ? "(ephemeral)" : s.name.c_str(), s.consumers,
        (unsigned long long)s.ack_floor, (unsigned long long)s.lag, s.pending,
        s.waiting_redelivery, s.ack_timeout_ms, s.max_deliveries,
        s.dead_letter_topic.c_str());
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
    throw UsageError{"unknown option '" + in.peek() + "'", usage};
  }

  if (command->name == "topics") {
    if (positional.empty()) throw UsageError{"missing list or info", usage};
    command->topics_action = positional[0];
    if (command->topics_action == "list" && positional.size() == 1) return true;
    if (command->topics_action == "info" && positional.size() == 2) {
      command->topics_name = positional[1];
      return true;
    }
    throw UsageError{"want 'topics list' or 'topics info TOPIC'", usage};
  }
  if (command->name == "subs") {
    if (positional.size() != 3 || positional[0] != "reset")
      throw UsageError{"want 'subs reset TOPIC NAME --to POSITION'", usage};
    if (!command->reset_position_given)
      throw UsageError{"missing --to POSITION", usage};
    command->sub.topic = positional[1];
    command->sub.subscription = positional[2];
    return true;
  }
  if (positional.empty()) throw UsageError{"missing TOPIC", usage};
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
    if (command.name == "subs") return run_subs_reset(server, command.sub);
    return run_sub(server, command.sub);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern: %s\n", e.what());
    return 1;
  }
}
