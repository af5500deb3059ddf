#include "options.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <limits>
#include <string>

#include "payload.h"
#include "units.h"

namespace tern::bench {
namespace {

// Beyond these, surely a typo.
constexpr double kMaxSeconds = 1e7, kMaxRate = 1e7;

// The options below parse their values with the shared cli/units helpers
// and throw what CLI11 throws for a bad value, so the error names the flag.
CLI::ValidationError bad_value(const std::string& flag,
                               const std::string& why) {
  return CLI::ValidationError(flag, "want " + why);
}

template <typename Field>
CLI::Option* add_count(CLI::App& app, const std::string& flag, Field* field,
                       uint64_t min, uint64_t max, const std::string& help) {
  return app
      .add_option_function<std::string>(
          flag,
          [=](const std::string& text) {
            uint64_t n;
            std::string why;
            if (!cli::parse_count(text, min, max, &n, &why))
              throw bad_value(flag, why);
            *field = Field(n);
          },
          help)
      ->type_name("N");
}

// Seconds, fractions allowed: 0 or more, or more than 0 if !zero_ok.
CLI::Option* add_seconds(CLI::App& app, const std::string& flag, double* field,
                         bool zero_ok, const std::string& help) {
  return app
      .add_option_function<std::string>(
          flag,
          [=](const std::string& text) {
            std::chrono::milliseconds ms;
            std::string why;
            if (!cli::parse_seconds(text, &ms, &why))
              throw bad_value(flag, why);
            double seconds = ms.count() / 1000.0;
            if (seconds > kMaxSeconds || (seconds == 0 && !zero_ok))
              throw bad_value(flag, std::string("a number of seconds ") +
                                        (zero_ok ? "from 0" : "above 0") +
                                        " to 10000000, not '" + text + "'");
            *field = seconds;
          },
          help)
      ->type_name("SECONDS");
}

// As the tern tool's: --tls-ca and the others imply --tls.
void add_tls_options(CLI::App& app, Options* o) {
  app.add_flag("--tls", o->tls,
               "connect with TLS, checking the broker's\n"
               "certificate against the system's CAs");
  app.add_option("--tls-ca", o->tls_ca,
                 "TLS, trusting the CA certificates in FILE\n"
                 "(PEM) instead")
      ->type_name("FILE");
  app.add_option("--tls-cert", o->tls_cert,
                 "TLS client certificate (PEM); needs --tls-key")
      ->type_name("FILE");
  app.add_option("--tls-key", o->tls_key, "the private key of --tls-cert")
      ->type_name("FILE");
  app.add_option("--tls-server-name", o->tls_server_name,
                 "the name the broker's certificate must have\n"
                 "(default: the host of --server)")
      ->type_name("NAME");
}

void add_options(CLI::App& app, Options* o) {
  app.add_option("--server", o->server,
                 "broker address (default 127.0.0.1:7411)")
      ->type_name("HOST:PORT");
  app.add_option("--user", o->login.user,
                 "log in as this user; the password is read\n"
                 "from $TERN_PASSWORD or --password-file")
      ->type_name("NAME");
  app.add_option("--password-file", o->password_file,
                 "read --user's password from this file")
      ->type_name("FILE");
  app.add_option("--token-file", o->token_file,
                 "log in with the token in this file (else\n"
                 "$TERN_TOKEN, if set)")
      ->type_name("FILE");
  add_tls_options(app, o);
  app.add_option("--topic", o->topic,
                 "topic base name (default bench); a run id is\n"
                 "appended, and -0, -1, ... with --topics > 1")
      ->type_name("NAME")
      ->check(CLI::Validator(
          [](std::string& text) {
            return text.empty() ? "want a topic name, not ''" : "";
          },
          ""));
  app.add_flag("--fixed-topic", o->fixed_topic,
               "use --topic as given, without the run id");
  add_count(app, "--producers", &o->producers, 1, 1024,
            "producer connections/threads (default 1)");
  add_count(app, "--consumers", &o->consumers, 0, 1024,
            "consumer connections/threads (default 1);\n"
            "spread round-robin over all subscriptions, so\n"
            "there must be at least subscriptions x topics;\n"
            "0: publish only (no subscription, no delivery\n"
            "figures, no delivery check)");
  add_count(app, "--subscriptions", &o->subscriptions, 1, 1024,
            "durable subscriptions per topic (default 1);\n"
            "each gets every message of its topic (fan-out)");
  add_count(app, "--topics", &o->topics, 1, 1024,
            "topics (default 1); producer i publishes to\n"
            "topic i mod topics: needs producers >= topics");
  app.add_option_function<std::string>(
         "--size",
         [o](const std::string& text) {
           uint64_t bytes;
           std::string why;
           if (!cli::parse_size(text, kHeaderBytes, 16u << 20, &bytes, &why))
             throw bad_value("--size", why);
           o->size = size_t(bytes);
         },
         "payload size (default 256, min 24)")
      ->type_name("BYTES");
  add_count(app, "--count", &o->count, 1, uint64_t(1) << 40,
            "messages over all producers (default 100000)");
  add_seconds(app, "--duration", &o->duration_s, false,
              "publish for this long (then --count is a limit\n"
              "only if given too)");
  // Not a count: fractions are allowed (0.5 is one message every 2 s).
  app.add_option_function<double>(
         "--rate",
         [o](double rate) {
           if (!(rate >= 0 && rate <= kMaxRate))
             throw bad_value("--rate", "a number from 0 to 10000000");
           o->rate = rate;
         },
         "total publish rate in messages per second,\n"
         "split over the producers (default 0: as fast as\n"
         "possible)")
      ->type_name("MSGS_PER_S");
  add_count(app, "--window", &o->window, 1, 1u << 24,
            "max unconfirmed messages per producer\n"
            "(default 1000)");
  add_count(app, "--batch", &o->batch, 1, 65536,
            "messages per publish frame (default 1)");
  add_count(app, "--prefetch", &o->prefetch, 1, 1000000,
            "max unacked messages per consumer\n"
            "(default 1000)");
  app.add_flag_callback(
      "--no-confirm", [o] { o->confirm = false; },
      "publish without confirms (no window, no confirm\n"
      "latency)");
  app.add_flag_callback(
      "--no-ack", [o] { o->ack = false; },
      "never ack; prefetch is raised to the message\n"
      "count (at most 1,000,000) so delivery does not\n"
      "stall, and the ack timeout to 24 h");
  app.add_flag("--replay", o->replay,
               "start the consumers only once everything is\n"
               "published: they read it back from the store;\n"
               "delivery is timed from their start (the report's\n"
               "\"consumed\" rate), and there is no end-to-end\n"
               "latency");
  add_seconds(app, "--warmup", &o->warmup_s, true,
              "messages sent in the first SECONDS are\n"
              "checked but left out of throughput and latency\n"
              "(default 0)");
  add_seconds(app, "--drain-timeout", &o->drain_timeout_s, true,
              "after the last confirm, wait at most this long\n"
              "for the last deliveries (default 30)");
  add_seconds(app, "--stall-timeout", &o->stall_timeout_s, false,
              "fail if nothing moves for this long (default 30)");
  app.add_flag_callback(
      "--quiet", [o] { o->progress = false; }, "no progress lines on stderr");
  app.add_flag("--json", o->json,
               "print one JSON object instead of the report");
  app.add_option("--latency-out", o->latency_out,
                 "also write the latency distributions (end to\n"
                 "end, confirm) to FILE as JSON: percentiles\n"
                 "0, 50, 75, 90, 95, 99, 99.9, 99.99, 99.999,\n"
                 "100, and the HdrHistogram-style percentile\n"
                 "curve (5 points per halving of 1 - p) in us")
      ->type_name("FILE");
}

// The checks that involve more than one flag; empty if they pass.
std::string check_combination(const CLI::App& app, const Options* o) {
  if (o->publish_only() && o->replay)
    return "--replay needs consumers (--consumers 0 publishes only)";
  if (o->publish_only() && app.count("--subscriptions") > 0)
    return "--consumers 0 makes no subscription: drop --subscriptions";
  if (o->producers < o->topics)
    return "--producers must be >= --topics (every topic needs a producer)";
  if (uint32_t(o->consumers) < o->subscriptions_total())
    return "--consumers must be >= --subscriptions x --topics (every "
           "subscription needs a consumer)";
  if (o->duration_s == 0 && o->count < uint64_t(o->producers))
    return "--count must be >= --producers";
  if (o->batch > o->window && o->confirm)
    return "--batch must not exceed --window";
  return "";
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tern-bench: %s (see tern-bench --help)\n",
               message.c_str());
  return 2;
}

}  // namespace

int parse_options(int argc, char** argv, Options* o) {
  CLI::App app(
      "Publishes and consumes through a Tern broker, checks that every "
      "message\narrives exactly once, and reports throughput and latency.",
      "tern-bench");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(30);
  app.footer(
      "BYTES: 256, 4KiB, 1MiB (also B, KB, MB). SECONDS: 30, 0.5.\n"
      "--latency-out FILE holds one JSON object, times in us:\n"
      "  {\"format\": \"tern-bench-latency/1\", \"unit\": \"us\", "
      "\"run_id\", \"settings\",\n"
      "   \"e2e\": DIST, \"confirm\": DIST}  (null if none measured)\n"
      "  DIST: {\"count\", \"min\", \"mean\", \"max\",\n"
      "   \"percentiles\": {\"0\": us, \"50\", \"75\", \"90\", "
      "\"95\", \"99\", \"99.9\", \"99.99\",\n"
      "                   \"99.999\", \"100\"},\n"
      "   \"percentile_curve\": [[percentile, us], ...] (0, 10, .. 40, "
      "50, 55,\n"
      "     .. 70, 75, 77.5, ...: 5 points each time 100 - percentile "
      "halves),\n"
      "   \"buckets\": [[highest_us, count], ...]}  (the whole "
      "histogram)\n"
      "bench/plot draws these next to bench/run.sh's results.\n"
      "Exit status: 0 if every confirmed message reached every subscription\n"
      "exactly once (--consumers 0: if every message was confirmed), 1 on\n"
      "loss, duplicates or errors, 2 on bad usage.");
  add_options(app, o);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }

  o->count_set = app.count("--count") > 0;
  std::string error = check_combination(app, o);
  if (!error.empty()) return usage_error(error);
  if (!cli::read_login(o->login.user, o->password_file, o->token_file,
                       &o->login, &error))
    return usage_error(error);
  if (o->duration_s > 0 && !o->count_set)
    o->count = std::numeric_limits<uint64_t>::max();
  return -1;
}

}  // namespace tern::bench
