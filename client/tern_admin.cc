// tern topics list|info|create|alter|delete and tern subs reset|delete.
#include <cstdio>
#include <limits>
#include <memory>

#include "tern_cli.h"

namespace tern::tool {
namespace {

// The retention options of `topics create` and `topics alter`; each is unset
// if not given.
struct Retention {
  std::optional<std::chrono::milliseconds> max_age;  // 0: none
  std::optional<uint64_t> max_bytes;                 // 0: none
  std::optional<uint64_t> max_messages;              // 0: none
  bool work_queue = false;
  std::optional<bool> dead_letter_expired;

  bool given() const {
    return max_age || max_bytes || max_messages || work_queue ||
           dead_letter_expired;
  }

  // Changes what was given and keeps the rest.
  void apply(TopicSettings* settings) const {
    if (max_age) settings->max_age = *max_age;
    if (max_bytes) settings->max_bytes = *max_bytes;
    if (max_messages) settings->max_messages = *max_messages;
    if (work_queue) settings->work_queue = true;
    if (dead_letter_expired)
      settings->dead_letter_expired = *dead_letter_expired;
  }
};

// What every topics command is given; each uses what it needs.
struct TopicsArgs {
  std::string topic;
  Retention retention;
};

struct SubsArgs {
  std::string topic;
  std::string subscription;
  std::optional<cli::Position> to;
};

const char* yes_no(bool b) { return b ? "yes" : "no"; }

// --- topics ---

int run_topics_list(const std::string& server) {
  auto client = connect(server);
  for (const auto& t : client->topics()) {
    std::printf("%s\tfirst offset %llu\tnext offset %llu\t%zu subscriptions\n",
                t.name.c_str(), (unsigned long long)t.first_offset,
                (unsigned long long)t.next_offset, t.subscriptions.size());
  }
  return 0;
}

int run_topics_info(const std::string& server, const std::string& name) {
  auto client = connect(server);
  auto topics = client->topics(name);
  if (topics.empty()) {
    std::fprintf(stderr, "tern: no topic named %s\n", name.c_str());
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
  std::printf("  in memory %llu bytes (tail and records read back)\n",
              (unsigned long long)t.memory_bytes);
  std::printf("  scheduled %llu (stored, appended when due)\n",
              (unsigned long long)t.scheduled);
  std::printf(
      "  max age %s, max bytes %s, max messages %s, work queue %s, "
      "dead-letter expired %s\n",
      cli::format_duration(t.settings.max_age).c_str(),
      cli::format_size(t.settings.max_bytes).c_str(),
      t.settings.max_messages == 0
          ? "none"
          : std::to_string(t.settings.max_messages).c_str(),
      yes_no(t.settings.work_queue), yes_no(t.settings.dead_letter_expired));
  for (const auto& s : t.subscriptions) {
    std::printf(
        "  subscription %s\n    consumers %u, ack floor %llu, lag %llu, "
        "pending %u, waiting for redelivery %u, skipped %llu\n    ack "
        "timeout %u ms, max deliveries %u, dead letters to %s, retry "
        "delays %s\n",
        s.name.empty() ? "(ephemeral)" : s.name.c_str(), s.consumers,
        (unsigned long long)s.ack_floor, (unsigned long long)s.lag, s.pending,
        s.waiting_redelivery, (unsigned long long)s.skipped, s.ack_timeout_ms,
        s.max_deliveries, s.dead_letter_topic.c_str(),
        cli::format_delays(s.retry_delays_ms).c_str());
    if (s.dead_letter_blocked > 0)
      std::printf("    %u held back: cannot dead-letter: %s\n",
                  s.dead_letter_blocked, s.dead_letter_error.c_str());
  }
  return 0;
}

int run_topics_create(const std::string& server, const TopicsArgs& args) {
  auto client = connect(server);
  TopicSettings settings;
  args.retention.apply(&settings);
  bool created = client->create_topic(args.topic, settings);
  std::printf(created ? "created topic %s\n"
                      : "topic %s exists already, with these settings\n",
              args.topic.c_str());
  return 0;
}

int run_topics_alter(const std::string& server, const TopicsArgs& args) {
  auto client = connect(server);
  // Read, change, write: the options not given keep their values.
  auto topics = client->topics(args.topic);
  if (topics.empty()) {
    std::fprintf(stderr, "tern: no topic named %s\n", args.topic.c_str());
    return 1;
  }
  TopicSettings settings = topics[0].settings;
  args.retention.apply(&settings);
  client->alter_topic(args.topic, settings);
  std::printf("altered topic %s\n", args.topic.c_str());
  return 0;
}

int run_topics_delete(const std::string& server, const std::string& name) {
  auto client = connect(server);
  client->delete_topic(name);
  std::printf("deleted topic %s\n", name.c_str());
  return 0;
}

// Adds the retention options to `command`, under the heading `group` ("" hides
// them from --help).
void add_retention_options(CLI::App* command, Retention* r,
                           const std::string& group) {
  add_duration_option(command, "--max-age", std::chrono::milliseconds::max(),
                      &r->max_age,
                      "delete messages older than this: a whole\n"
                      "number with ms, s, m, h or d, e.g. 24h;\n"
                      "none: no limit",
                      NoneIs::kZero)
      ->group(group);
  add_size_option(command, "--max-bytes", &r->max_bytes,
                  "keep the stored messages under this size: a\n"
                  "whole number of bytes, or with B, KiB, MiB, GiB,\n"
                  "TiB (powers of 1024) or KB, MB, GB, TB (powers\n"
                  "of 1000), e.g. 1GiB; none: no limit",
                  NoneIs::kZero)
      ->group(group);
  add_count_option(command, "--max-messages",
                   std::numeric_limits<uint64_t>::max(), &r->max_messages,
                   "keep at most N messages; none: no limit", NoneIs::kZero)
      ->group(group);
  command
      ->add_flag("--work-queue", r->work_queue,
                 "delete a message once every durable\n"
                 "subscription acknowledged it (fixed at creation)")
      ->group(group);
  // Parsed in order, so that the last of the two wins.
  command
      ->add_flag_callback(
          "--dead-letter-expired", [r] { r->dead_letter_expired = true; },
          "send messages whose time to live ran out to\n"
          "the dead-letter topic")
      ->trigger_on_parse()
      ->group(group);
  command
      ->add_flag_callback(
          "--no-dead-letter-expired", [r] { r->dead_letter_expired = false; },
          "let them go without (the default)")
      ->trigger_on_parse()
      ->group(group);
}

void add_topics(CLI::App* tern, Run* run) {
  auto args = std::make_shared<TopicsArgs>();
  CLI::App* topics = tern->add_subcommand(
      "topics", "list, show, create, alter or delete topics");
  topics->require_subcommand(1);

  CLI::App* list = topics->add_subcommand("list", "list the topics");
  list->footer(
      "One line per topic: name, first and next offset, subscriptions.");
  on_run(list, run, run_topics_list);

  CLI::App* info = topics->add_subcommand(
      "info", "show a topic, its settings and subscriptions");
  info->add_option("TOPIC", args->topic, "the topic")->required();
  info->footer(
      "Shows the topic's offsets, messages and bytes stored, settings, and "
      "per\n"
      "subscription its consumers, ack floor, lag (committed messages not yet\n"
      "acked), pending deliveries, messages waiting for redelivery and\n"
      "messages retention removed before they were acked (skipped).");
  on_run(info, run, [args](const std::string& server) {
    return run_topics_info(server, args->topic);
  });

  CLI::App* create = topics->add_subcommand(
      "create", "create a topic with retention settings");
  create->add_option("TOPIC", args->topic, "the topic")->required();
  add_retention_options(create, &args->retention, "Retention");
  create->footer(
      "Creates TOPIC with the settings given (none: keep everything).\n"
      "Creating a topic that exists with the same settings succeeds; with\n"
      "other settings it fails.");
  on_run(create, run, [args](const std::string& server) {
    return run_topics_create(server, *args);
  });

  CLI::App* alter =
      topics->add_subcommand("alter", "change a topic's retention settings");
  alter->add_option("TOPIC", args->topic, "the topic")->required();
  add_retention_options(alter, &args->retention, "Retention");
  alter->footer(
      "Changes the settings given and keeps the others; 'none' lifts a\n"
      "limit. Retention applies new limits within a second. --work-queue is\n"
      "fixed at creation.");
  on_run(alter, run, [args](const std::string& server) {
    return run_topics_alter(server, *args);
  });

  CLI::App* del = topics->add_subcommand(
      "delete", "delete a topic, its messages and subscriptions");
  del->add_option("TOPIC", args->topic, "the topic")->required();
  del->footer(
      "Deletes TOPIC with its messages and subscriptions; their consumers\n"
      "are ended.");
  on_run(del, run, [args](const std::string& server) {
    return run_topics_delete(server, args->topic);
  });

  // The other commands take the retention options too, hidden, only to
  // refuse them with a clearer message than CLI11's "not expected".
  for (CLI::App* command : {list, info, del}) {
    add_retention_options(command, &args->retention, "");
  }
  // Runs after the chosen command's own callback.
  topics->callback([args, create, alter] {
    bool given = args->retention.given();
    if (given && !create->parsed() && !alter->parsed()) {
      throw CLI::ValidationError(
          "retention options go with 'topics create' and 'topics alter' "
          "only");
    }
    if (!given && alter->parsed()) {
      throw CLI::ValidationError("'topics alter' needs at least one option");
    }
  });
}

// --- subs ---

int run_subs_reset(const std::string& server, const SubsArgs& args) {
  auto client = connect(server);
  SubscribeOptions options;
  options.topic = args.topic;
  options.subscription = args.subscription;
  set_start(*args.to, &options);
  uint64_t offset = client->reset_subscription(options);
  std::printf("subscription %s on %s now starts at offset %llu\n",
              args.subscription.c_str(), args.topic.c_str(),
              (unsigned long long)offset);
  return 0;
}

int run_subs_delete(const std::string& server, const SubsArgs& args) {
  auto client = connect(server);
  client->delete_subscription(args.topic, args.subscription);
  std::printf("deleted subscription %s on %s\n", args.subscription.c_str(),
              args.topic.c_str());
  return 0;
}

void add_subs(CLI::App* tern, Run* run) {
  auto args = std::make_shared<SubsArgs>();
  CLI::App* subs =
      tern->add_subcommand("subs", "move or delete durable subscriptions");
  subs->require_subcommand(1);

  CLI::App* reset =
      subs->add_subcommand("reset", "move a durable subscription");
  reset->add_option("TOPIC", args->topic, "the topic")->required();
  reset->add_option("NAME", args->subscription, "the subscription")->required();
  add_position_option(reset, "--to", &args->to,
                      "earliest, latest, offset:N, or time:T (Unix\n"
                      "milliseconds)")
      ->required();
  reset->footer(
      "Moves the durable subscription NAME of TOPIC: messages before\n"
      "POSITION count as acknowledged, messages from it on are delivered\n"
      "(again).");
  on_run(reset, run, [args](const std::string& server) {
    return run_subs_reset(server, *args);
  });

  CLI::App* del =
      subs->add_subcommand("delete", "delete a durable subscription");
  del->add_option("TOPIC", args->topic, "the topic")->required();
  del->add_option("NAME", args->subscription, "the subscription")->required();
  del->footer(
      "Deletes the durable subscription NAME of TOPIC and its position; its\n"
      "consumers are ended.");
  on_run(del, run, [args](const std::string& server) {
    return run_subs_delete(server, *args);
  });
}

}  // namespace

void add_admin_commands(CLI::App* tern, Run* run) {
  add_topics(tern, run);
  add_subs(tern, run);
}

}  // namespace tern::tool
