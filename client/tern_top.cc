// tern top: a live view of topics and subscriptions, the worst lag first.
//
// Rates come from two samples of Client::topics() an interval apart: a
// topic's publish rate from its next offset, a subscription's ack rate from
// its ack floor (acks above the floor count once the floor passes them).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "tern_cli.h"

namespace tern::tool {
namespace {

using Clock = std::chrono::steady_clock;

struct TopArgs {
  bool once = false;
  bool json = false;
  std::optional<std::chrono::milliseconds> interval;  // unset: 1 s
};

struct Row {
  std::string topic;
  std::string subscription;  // empty: ephemeral
  uint32_t consumers = 0;
  uint64_t lag = 0;
  uint32_t pending = 0;
  uint32_t waiting = 0;
  double acked_per_s = 0;
};

struct View {
  std::vector<std::pair<const TopicInfo*, double>> topics;  // publish rate
  std::vector<Row> rows;                                    // worst lag first
};

double rate(uint64_t before, uint64_t after, double seconds) {
  return after > before && seconds > 0 ? double(after - before) / seconds : 0;
}

View make_view(const std::vector<TopicInfo>& before,
               const std::vector<TopicInfo>& after, double seconds) {
  std::map<std::string, const TopicInfo*> earlier;
  for (const TopicInfo& t : before) earlier[t.name] = &t;
  View view;
  for (const TopicInfo& t : after) {
    auto it = earlier.find(t.name);
    const TopicInfo* old = it == earlier.end() ? nullptr : it->second;
    view.topics.emplace_back(
        &t, old ? rate(old->next_offset, t.next_offset, seconds) : 0);
    for (const SubscriptionInfo& s : t.subscriptions) {
      Row row{t.name, s.name,    s.consumers,
              s.lag,  s.pending, s.waiting_redelivery,
              0};
      if (old != nullptr && !s.name.empty())
        for (const SubscriptionInfo& o : old->subscriptions)
          if (o.name == s.name)
            row.acked_per_s = rate(o.ack_floor, s.ack_floor, seconds);
      view.rows.push_back(row);
    }
  }
  std::stable_sort(view.rows.begin(), view.rows.end(),
                   [](const Row& a, const Row& b) { return a.lag > b.lag; });
  return view;
}

std::string view_json(const View& view) {
  nlohmann::json topics = nlohmann::json::array();
  for (const auto& [t, per_s] : view.topics)
    topics.push_back({{"name", t->name},
                      {"messages", t->messages},
                      {"bytes", t->bytes},
                      {"published_per_s", per_s}});
  nlohmann::json subscriptions = nlohmann::json::array();
  for (const Row& r : view.rows)
    subscriptions.push_back({{"topic", r.topic},
                             {"name", r.subscription},
                             {"consumers", r.consumers},
                             {"lag", r.lag},
                             {"pending", r.pending},
                             {"waiting", r.waiting},
                             {"acked_per_s", r.acked_per_s}});
  return nlohmann::json{{"topics", topics}, {"subscriptions", subscriptions}}
      .dump();
}

void print_table(const View& view) {
  std::printf("%-32s %12s %14s %10s\n", "TOPIC", "MESSAGES", "BYTES", "IN/S");
  for (const auto& [t, per_s] : view.topics)
    std::printf("%-32s %12llu %14llu %10.0f\n", t->name.c_str(),
                static_cast<unsigned long long>(t->messages),
                static_cast<unsigned long long>(t->bytes), per_s);
  std::printf("\n%-32s %-20s %9s %10s %8s %8s %10s\n", "TOPIC", "SUBSCRIPTION",
              "CONSUMERS", "LAG", "PENDING", "WAITING", "ACKED/S");
  for (const Row& r : view.rows)
    std::printf("%-32s %-20s %9u %10llu %8u %8u %10.0f\n", r.topic.c_str(),
                r.subscription.empty() ? "(ephemeral)" : r.subscription.c_str(),
                r.consumers, static_cast<unsigned long long>(r.lag), r.pending,
                r.waiting, r.acked_per_s);
}

int run_top(const std::string& server, const TopArgs& args) {
  ClientOptions options;
  options.client_name = "tern-top";
  auto client = connect(server, options);
  auto interval = args.interval.value_or(std::chrono::seconds(1));
  bool clear = !args.json && !args.once && isatty(STDOUT_FILENO);
  std::vector<TopicInfo> before = client->topics();
  auto then = Clock::now();
  for (;;) {
    std::this_thread::sleep_for(interval);
    std::vector<TopicInfo> after = client->topics();
    auto now = Clock::now();
    View view = make_view(before, after,
                          std::chrono::duration<double>(now - then).count());
    if (clear) std::fputs("\033[H\033[2J", stdout);
    if (args.json)
      std::printf("%s\n", view_json(view).c_str());
    else
      print_table(view);
    std::fflush(stdout);
    if (args.once) return 0;
    before = std::move(after);
    then = now;
  }
}

}  // namespace

void add_top_command(CLI::App* tern, Run* run) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* top = tern->add_subcommand(
      "top", "a live view of topics and subscriptions, worst lag first");
  top->add_flag("--once", args->once, "print one view and exit");
  top->add_flag("--json", args->json,
                "print each view as one JSON object (a line)");
  add_seconds_option(top, "--interval", &args->interval,
                     "seconds between views (default 1); rates are\n"
                     "over this interval");
  top->footer(
      "Every interval, shows each topic (messages and bytes stored, messages\n"
      "published per second) and each subscription (consumers, lag, pending,\n"
      "waiting for redelivery, messages acked per second), the largest lag\n"
      "first. Runs until interrupted, or once with --once.");
  on_run(top, run,
         [args](const std::string& server) { return run_top(server, *args); });
}

}  // namespace tern::tool
