// tern pub and tern sub.
#include <errno.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "tern_cli.h"

namespace tern::tool {
namespace {

// Pipelining for `pub` from stdin: messages in flight, and per frame.
constexpr size_t kPubWindow = 1000;
constexpr size_t kPubBatch = 100;
constexpr uint64_t kDefaultPrefetch = 1000;

struct PubArgs {
  std::string topic;
  std::vector<std::string> messages;  // empty: read stdin
  std::optional<std::chrono::milliseconds> delay;  // unset: deliver at once
};

struct SubArgs {
  std::string topic;
  std::string subscription;                          // empty: ephemeral
  std::optional<cli::Position> from;                 // unset: latest
  std::optional<uint64_t> count;                     // unset: no limit
  std::optional<std::chrono::milliseconds> timeout;  // unset: wait forever
  std::optional<uint64_t> prefetch;
  std::vector<std::chrono::milliseconds> retry_delays;  // empty: the broker's
  bool json = false;     // one JSON object per message
  bool headers = false;  // headers before the payload
};

// --- pub ---

// Batches messages into publish_async() frames. Confirmed messages are counted
// in `confirmed`, which the caller declares before the Client so that it
// outlives every callback, including those run while the Client closes.
class Publisher {
 public:
  Publisher(Client& client, std::string topic, std::atomic<uint64_t>& confirmed,
            std::chrono::milliseconds delay)
      : client_(client),
        topic_(std::move(topic)),
        confirmed_(confirmed),
        delay_(delay) {
    batch_.reserve(kPubBatch);
  }

  void add(std::string payload) {
    OutgoingMessage& m = batch_.emplace_back();
    m.payload = std::move(payload);
    m.delay = delay_;
    if (batch_.size() == kPubBatch) send();
  }

  void send() {
    if (batch_.empty()) return;
    client_.publish_async(
        topic_, batch_,
        [&confirmed = confirmed_](const std::vector<PublishResult>& rs) {
          for (const auto& r : rs) {
            if (r.error == ErrorCode::kNone) {
              confirmed.fetch_add(1);
            }
          }
        });
    batch_.clear();  // keeps its capacity for the next batch
  }

  // Sends what is left and waits for every confirm; throws the first failure.
  uint64_t finish() {
    send();
    client_.flush();
    return confirmed_.load();
  }

 private:
  Client& client_;
  std::string topic_;
  std::vector<OutgoingMessage> batch_;
  std::atomic<uint64_t>& confirmed_;  // counted on the client's reader thread
  std::chrono::milliseconds delay_;
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
  ClientOptions options;
  options.client_name = "tern-cli";
  options.max_unconfirmed = kPubWindow;
  std::atomic<uint64_t> confirmed{0};
  auto client = connect(server, options);
  Publisher publisher(*client, args.topic, confirmed,
                      args.delay.value_or(std::chrono::milliseconds(0)));
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

// Adds the MESSAGE... positional, taking every message verbatim. Bound the
// usual way (a std::vector, any number of values), CLI11 2.1 would split
// "[a,b]" into two messages, publish none for "{}", and end `pub` at a "--"
// that follows a message. Declaring that MESSAGE expects ever more values,
// none of them "extra", makes it take each argument as it is, before and
// after "--"; the raw callback skips CLI11's conversions.
void add_messages_positional(CLI::App* pub, std::vector<std::string>* out) {
  constexpr int kUnlimited = CLI::detail::expected_max_vector_size;
  pub->add_option(
         "MESSAGE",
         [out](const CLI::results_t& messages) {
           *out = messages;
           return true;
         },
         "messages to publish; none: each line of standard input")
      ->expected(kUnlimited, kUnlimited)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

void add_pub(CLI::App* tern, Run* run) {
  auto args = std::make_shared<PubArgs>();
  CLI::App* pub =
      tern->add_subcommand("pub",
                           "publish messages (one per line from stdin if none\n"
                           "are given) and wait for their confirms");
  pub->add_option("TOPIC", args->topic, "the topic to publish to")->required();
  add_messages_positional(pub, &args->messages);
  add_duration_option(pub, "--delay", std::chrono::hours(366 * 24),
                      &args->delay,
                      "schedule: deliver no earlier than this from now\n"
                      "(e.g. 30s, 5m; the messages are stored and\n"
                      "confirmed at once)");
  pub->footer(
      "Publishes each MESSAGE to TOPIC. With no MESSAGE, publishes each line\n"
      "of standard input (without its newline). Exits 0 once the broker has\n"
      "confirmed every message as stored, 1 if any was not. Everything after\n"
      "'--' is a message.");
  on_run(pub, run,
         [args](const std::string& server) { return run_pub(server, *args); });
}

// --- sub ---

bool valid_utf8(const std::string& text) {
  static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t n;  // continuation bytes
    if (c < 0x80)
      n = 0;
    else if ((c >> 5) == 0x6)
      n = 1;
    else if ((c >> 4) == 0xE)
      n = 2;
    else if ((c >> 3) == 0x1E)
      n = 3;
    else
      return false;
    if (text.size() - i <= n) return false;
    uint32_t code = c & (0x7F >> (n == 0 ? 0 : n + 1));
    for (size_t k = 1; k <= n; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next >> 6) != 0x2) return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past Unicode are not UTF-8.
    if (code < kMin[n] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF)
      return false;
    i += n + 1;
  }
  return true;
}

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          int(bytes.size()));
  out.resize(size_t(n));
  return out;
}

// Sets `name` to `bytes` as text if it is valid UTF-8, else `name`_base64.
void put_bytes(nlohmann::json& object, const std::string& name,
               const std::string& bytes) {
  if (valid_utf8(bytes))
    object[name] = bytes;
  else
    object[name + "_base64"] = base64(bytes);
}

// `tern sub --json`: everything about a message someone debugging a flow
// may want, on one line.
std::string message_json(const Message& m) {
  nlohmann::json object = {{"topic", m.topic},
                           {"subscription", m.subscription},
                           {"offset", m.offset},
                           {"attempt", m.attempt},
                           {"timestamp_ms", m.timestamp_ms}};
  put_bytes(object, "key", m.key);
  nlohmann::json headers = nlohmann::json::array();
  for (const Header& h : m.headers) {
    nlohmann::json header;
    put_bytes(header, "name", h.name);
    put_bytes(header, "value", h.value);
    headers.push_back(std::move(header));
  }
  object["headers"] = std::move(headers);
  put_bytes(object, "payload", m.payload);
  return object.dump();
}

// A message's headers on one line: name=value pairs separated by spaces,
// every byte of a value that is not printable ASCII, a space, '=' or '\\'
// written as \xNN.
std::string headers_text(const Message& m) {
  std::string text;
  for (const Header& h : m.headers) {
    if (!text.empty()) text += ' ';
    text += h.name + '=';
    for (unsigned char c : h.value) {
      if (c > ' ' && c < 127 && c != '=' && c != '\\') {
        text += char(c);
      } else {
        char escaped[5];
        std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
        text += escaped;
      }
    }
  }
  return text;
}

int run_sub(const std::string& server, const SubArgs& args) {
  ClientOptions client_options;
  client_options.client_name = "tern-cli";
  auto client = connect(server, client_options);
  SubscribeOptions options;
  options.topic = args.topic;
  options.subscription = args.subscription;
  set_start(args.from.value_or(cli::Position{}), &options);
  options.prefetch = uint32_t(args.prefetch.value_or(kDefaultPrefetch));
  options.retry_delays = args.retry_delays;
  Subscription sub = client->subscribe(options);

  uint64_t printed = 0;
  while (!args.count || printed < *args.count) {
    auto m = sub.next(args.timeout.value_or(std::chrono::hours(1)));
    if (!m) {
      if (args.timeout) break;
      continue;  // no --timeout: wait forever
    }
    // Acked only once it is really out, so a failed write means redelivery.
    std::string line = args.json        ? message_json(*m)
                       : sub.wildcard() ? m->topic + '\t' + m->payload
                                        : m->payload;
    if (args.headers && !args.json) line = headers_text(*m) + '\t' + line;
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() ||
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

void add_sub(CLI::App* tern, Run* run) {
  auto args = std::make_shared<SubArgs>();
  CLI::App* sub = tern->add_subcommand(
      "sub", "print messages as they arrive, one per line");
  sub->add_option("TOPIC", args->topic,
                  "the topic, or a pattern such as 'orders.*'")
      ->required();
  add_text_option(sub, "--subscription", &args->subscription,
                  "durable subscription to attach to (created if\n"
                  "new); without it the subscription is ephemeral")
      ->type_name("NAME");
  add_position_option(sub, "--from", &args->from,
                      "where a new subscription starts: latest\n"
                      "(default), earliest, offset:N, or time:T with T\n"
                      "in Unix milliseconds");
  add_count_option(sub, "--count", std::numeric_limits<uint64_t>::max(),
                   &args->count, "stop after N messages");
  add_seconds_option(sub, "--timeout", &args->timeout,
                     "stop after SECONDS with no new message");
  add_count_option(sub, "--prefetch", std::numeric_limits<uint32_t>::max(),
                   &args->prefetch,
                   "max unacknowledged messages in flight\n(default: " +
                       std::to_string(kDefaultPrefetch) + ")");
  add_delays_option(sub, "--retry-delays", &args->retry_delays,
                    "the subscription's backoff: the wait before a\n"
                    "message is delivered again after delivery N\n"
                    "failed, per N, the last repeating (e.g.\n"
                    "1s,5s,30s; 0: at once; default: the broker's)");
  sub->add_flag("--headers", args->headers,
                "print each message's headers before it: name=value\n"
                "pairs separated by spaces, then a tab (bytes that\n"
                "are not printable ASCII, ' ', '=' or '\\' as \\xNN)");
  sub->add_flag("--json", args->json,
                "print each message as one JSON object: topic,\n"
                "subscription, offset, attempt, timestamp_ms, key,\n"
                "headers, payload (text if valid UTF-8, else\n"
                "key_base64, payload_base64, ...)");
  sub->footer(
      "Prints each message's payload on its own line and acknowledges it once\n"
      "printed. Runs until --count messages were printed, or until --timeout\n"
      "seconds pass without a new message, or forever.\n"
      "\n"
      "TOPIC may be a pattern (ephemeral only): '*' matches one '.'-separated\n"
      "token, a final '>' one or more, e.g. 'orders.*' or 'orders.>'. Each\n"
      "line is then the message's topic, a tab, and the payload.\n"
      "With --headers, the headers and a tab come first.");
  on_run(sub, run,
         [args](const std::string& server) { return run_sub(server, *args); });
}

}  // namespace

void add_pubsub_commands(CLI::App* tern, Run* run) {
  add_pub(tern, run);
  add_sub(tern, run);
}

}  // namespace tern::tool
