#include "api_json.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace tern {

namespace {

using json = nlohmann::json;

json subscription_json(const SubscriptionStats& s) {
  return {{"name", s.name},
          {"durable", !s.name.empty()},
          {"consumers", s.consumers},
          {"lag", s.lag},
          {"pending", s.pending},
          {"waiting", s.waiting},
          {"delivered", s.delivered},
          {"redelivered", s.redelivered},
          {"acked", s.acked},
          {"nacked", s.nacked},
          {"dead_lettered", s.dead_lettered},
          {"expired", s.expired},
          {"delivered_per_s", s.delivered_per_s},
          {"acked_per_s", s.acked_per_s}};
}

}  // namespace

std::string api_broker(const Stats& stats) {
  json doc = {{"version", kVersion},
              {"started_ms", stats.started_ms},
              {"now_ms", stats.taken_ms},
              {"fsync", stats.fsync ? "always" : "never"},
              {"storage_writable", stats.storage_fault.empty()},
              {"storage_fault", stats.storage_fault},
              {"connections", stats.connection_list.size()},
              {"connections_accepted", stats.connections_accepted},
              {"connections_refused", stats.connections_refused},
              {"topics", stats.topics.size()},
              {"dedupe_entries", stats.dedupe_entries},
              {"memory",
               {{"budget", stats.memory_budget},
                {"cached", stats.memory_cached},
                {"output", stats.memory_output}}}};
  return doc.dump(2);
}

std::string api_topics(const Stats& stats) {
  json topics = json::array();
  for (const TopicStats& t : stats.topics) {
    json subscriptions = json::array();
    for (const SubscriptionStats& s : t.subscriptions)
      subscriptions.push_back(subscription_json(s));
    topics.push_back({{"name", t.name},
                      {"appended_messages", t.appended_messages},
                      {"appended_bytes", t.appended_bytes},
                      {"stored_messages", t.stored_messages},
                      {"stored_bytes", t.stored_bytes},
                      {"retention_removed_messages", t.removed_messages},
                      {"retention_removed_bytes", t.removed_bytes},
                      {"memory_bytes", t.memory_bytes},
                      {"scheduled_messages", t.scheduled_messages},
                      {"appended_per_s", t.appended_per_s},
                      {"subscriptions", std::move(subscriptions)}});
  }
  return topics.dump(2);
}

std::string api_subscriptions(const Stats& stats) {
  // Every subscription with its topic, the largest lag first: the page's
  // and a script's first question is which consumers fall behind.
  std::vector<std::pair<const TopicStats*, const SubscriptionStats*>> all;
  for (const TopicStats& t : stats.topics)
    for (const SubscriptionStats& s : t.subscriptions) all.emplace_back(&t, &s);
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second->lag > b.second->lag;
  });
  json list = json::array();
  for (const auto& [topic, sub] : all) {
    json entry = subscription_json(*sub);
    entry["topic"] = topic->name;
    list.push_back(std::move(entry));
  }
  return list.dump(2);
}

std::string api_connections(const Stats& stats) {
  json list = json::array();
  for (const ConnectionStats& c : stats.connection_list)
    list.push_back({{"id", c.id},
                    {"peer", c.peer},
                    {"client_name", c.client_name},
                    {"user", c.user},
                    {"tls", c.tls},
                    {"bytes_in", c.bytes_in},
                    {"bytes_out", c.bytes_out},
                    {"output_waiting", c.output_waiting},
                    {"bytes_in_per_s", c.bytes_in_per_s},
                    {"bytes_out_per_s", c.bytes_out_per_s}});
  return list.dump(2);
}

}  // namespace tern
