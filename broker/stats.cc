// The HTTP side (http_server.h): starting it, and the snapshots of the
// broker it serves (stats.h).
#include "stats.h"

#include <map>

#include "broker.h"
#include "clock.h"
#include "connection.h"
#include "log.h"

namespace tern {

namespace {

constexpr uint64_t kStatsIntervalMs = 1000;

double per_second(uint64_t now, uint64_t before, double seconds) {
  return now > before && seconds > 0 ? double(now - before) / seconds : 0;
}

// Rates from the counters of the snapshot before, matched by name (topics,
// durable subscriptions) or id (connections).
void add_rates(Stats& now, const Stats& before) {
  double seconds = double(now.taken_ms - before.taken_ms) / 1000;
  std::map<std::string, const TopicStats*> topics;
  for (const TopicStats& t : before.topics) topics[t.name] = &t;
  for (TopicStats& t : now.topics) {
    auto it = topics.find(t.name);
    if (it == topics.end()) continue;
    const TopicStats& old = *it->second;
    t.appended_per_s =
        per_second(t.appended_messages, old.appended_messages, seconds);
    for (SubscriptionStats& s : t.subscriptions) {
      if (s.name.empty()) continue;
      for (const SubscriptionStats& o : old.subscriptions) {
        if (o.name != s.name) continue;
        s.delivered_per_s = per_second(s.delivered, o.delivered, seconds);
        s.acked_per_s = per_second(s.acked, o.acked, seconds);
      }
    }
  }
  std::map<uint64_t, const ConnectionStats*> connections;
  for (const ConnectionStats& c : before.connection_list)
    connections[c.id] = &c;
  for (ConnectionStats& c : now.connection_list) {
    auto it = connections.find(c.id);
    if (it == connections.end()) continue;
    c.bytes_in_per_s = per_second(c.bytes_in, it->second->bytes_in, seconds);
    c.bytes_out_per_s = per_second(c.bytes_out, it->second->bytes_out, seconds);
  }
}

HttpServer::Access http_access(const Config& config) {
  HttpServer::Access access;
  access.open = config.users.empty();
  for (const auto& [name, user] : config.users)
    if (user.monitor && !user.token_hash.empty())
      access.token_hashes.push_back(user.token_hash);
  return access;
}

}  // namespace

bool Broker::start_http() {
  if (config_.http_host.empty()) return true;
  std::string error;
  last_stats_ = std::make_shared<Stats>(take_stats());
  last_stats_ms_ = uv_now(&loop_);
  http_ = HttpServer::start(config_.http_host, config_.http_port,
                            http_access(config_), last_stats_, &error);
  if (!http_) {
    LOG_ERROR("%s", error.c_str());
    return false;
  }
  LOG_INFO("HTTP on %s:%d (/metrics, /healthz, /readyz)",
           config_.http_host.c_str(), config_.http_port);
  return true;
}

void Broker::publish_stats(uint64_t now) {
  if (!http_ || now - last_stats_ms_ < kStatsIntervalMs) return;
  last_stats_ms_ = now;
  auto stats = std::make_shared<Stats>(take_stats());
  if (last_stats_) add_rates(*stats, *last_stats_);
  last_stats_ = stats;
  http_->publish(std::move(stats));
}

void Broker::reload_http(const Config& fresh) {
  if (http_) http_->set_access(http_access(fresh));
}

Stats Broker::take_stats() const {
  Stats stats;
  stats.taken_ms = unix_ms();
  stats.started_ms = started_ms_;
  stats.fsync = config_.fsync;
  if (store_.failed()) stats.storage_fault = "storage fault (see the log)";
  stats.connections_accepted = connections_accepted_;
  stats.connections_refused = connections_refused_;
  stats.dedupe_entries = dedupe_ids_;
  stats.memory_budget = memory_.limit();
  stats.memory_cached = memory_.cached();
  stats.memory_output = memory_.output();
  stats.metrics_topics = config_.metrics_topics;
  stats.topics.reserve(topics_.size());
  for (const auto& [name, topic] : topics_) {
    TopicStats& t = stats.topics.emplace_back();
    t.name = name;
    t.appended_messages = topic->appended_messages();
    t.appended_bytes = topic->appended_bytes();
    t.removed_messages = topic->removed_messages();
    t.removed_bytes = topic->removed_bytes();
    storage::TopicState state = topic->state();
    t.stored_messages = state.messages;
    t.stored_bytes = state.bytes;
    t.memory_bytes = topic->memory_bytes();
    t.scheduled_messages = topic->schedule().count;
    for (const auto& s : topic->subscriptions()) {
      SubscriptionStats& sub = t.subscriptions.emplace_back();
      sub.name = s->name();
      sub.consumers = s->consumer_count();
      sub.lag = s->lag();
      sub.pending = s->pending_count();
      sub.waiting = s->waiting_count();
      const Subscription::Counters& c = s->counters();
      sub.delivered = c.delivered;
      sub.redelivered = c.redelivered;
      sub.acked = c.acked;
      sub.nacked = c.nacked;
      sub.dead_lettered = c.dead_lettered;
      sub.expired = c.expired;
    }
  }
  for (size_t i = 0; i < frames_received_.size(); ++i)
    if (frames_received_[i] > 0)
      stats.frames_received[wire::EnumNamesBody()[i]] = frames_received_[i];
  for (size_t i = 0; i < errors_sent_.size(); ++i)
    if (errors_sent_[i] > 0)
      stats.errors_sent[wire::EnumNameErrorCode(wire::ErrorCode(i))] =
          errors_sent_[i];
  stats.commit_writes = committer_->commit_writes();
  stats.commit_seconds = committer_->commit_seconds();
  for (auto [name, per_family] : {std::pair{"cur-size-all-mem-tables", true},
                                  {"total-sst-files-size", true},
                                  {"estimate-pending-compaction-bytes", true},
                                  {"is-write-stopped", false},
                                  {"actual-delayed-write-rate", false},
                                  {"background-errors", false},
                                  {"num-running-compactions", false},
                                  {"num-running-flushes", false}})
    stats.rocksdb[name] =
        store_.property(std::string("rocksdb.") + name, per_family);
  stats.connection_list.reserve(connections_.size());
  for (const auto& [id, c] : connections_) {
    ConnectionStats& cs = stats.connection_list.emplace_back();
    cs.id = id;
    cs.peer = c->peer();
    cs.client_name = c->session().client_name();
    cs.user = c->session().user();
    cs.tls = c->tls();
    cs.bytes_in = c->bytes_in();
    cs.bytes_out = c->bytes_out();
    cs.output_waiting = c->output_waiting();
  }
  return stats;
}

}  // namespace tern
