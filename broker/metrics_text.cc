#include "metrics_text.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

namespace tern {

namespace {

// A label value with \, " and newline escaped, as the format wants.
std::string escaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Writer {
 public:
  // Starts a metric family: its samples must follow before the next one.
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' '
         << type << '\n';
  }
  void sample(double value, const std::string& labels = "") {
    out_ << name_;
    if (!labels.empty()) out_ << '{' << labels << '}';
    char number[32];
    std::snprintf(number, sizeof number, "%.17g", value);
    out_ << ' ' << number << '\n';
  }
  void histogram(const MetricHistogram& h, const std::string& labels = "") {
    std::string name = name_;
    std::string prefix = labels.empty() ? "" : labels + ",";
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      name_ = name + "_bucket";
      char bound[32];
      std::snprintf(bound, sizeof bound, "%g", h.bounds[i]);
      sample(double(h.counts[i]), prefix + "le=\"" + bound + "\"");
    }
    name_ = name + "_bucket";
    sample(double(h.count), prefix + "le=\"+Inf\"");
    name_ = name + "_sum";
    sample(h.sum, labels);
    name_ = name + "_count";
    sample(double(h.count), labels);
    name_ = name;
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::string name_;
};

std::string topic_label(const TopicStats& t) {
  return "topic=\"" + escaped(t.name) + "\"";
}

// Ephemeral subscriptions have no name and come and go with their
// consumers: each topic's are summed into one series.
constexpr char kEphemeral[] = "(ephemeral)";

// One series per durable subscription and one for a topic's ephemeral ones.
void subscription_samples(
    Writer& w, const std::vector<TopicStats>& topics,
    const std::function<uint64_t(const SubscriptionStats&)>& field) {
  for (const TopicStats& t : topics) {
    uint64_t ephemeral = 0;
    bool any_ephemeral = false;
    for (const SubscriptionStats& s : t.subscriptions) {
      if (s.name.empty()) {
        ephemeral += field(s);
        any_ephemeral = true;
        continue;
      }
      w.sample(double(field(s)),
               topic_label(t) + ",subscription=\"" + escaped(s.name) + "\"");
    }
    if (any_ephemeral)
      w.sample(double(ephemeral),
               topic_label(t) + ",subscription=\"" + kEphemeral + "\"");
  }
}

// The process's CPU time, start time and resident memory (/proc/self/stat)
// and its open file descriptors (/proc/self/fd). False if unreadable.
struct Process {
  double cpu_seconds = 0;
  double start_time_seconds = 0;
  double resident_bytes = 0;
  double open_fds = 0;
};

bool read_process(Process* p) {
  std::ifstream stat_file("/proc/self/stat");
  std::string line;
  if (!std::getline(stat_file, line)) return false;
  // The command name (field 2) may hold spaces: fields count from its ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0, start = 0, rss_pages = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
    if (i == 22) start = std::stoull(field);
    if (i == 24) rss_pages = std::stoull(field);
  }
  double ticks = double(sysconf(_SC_CLK_TCK));
  p->cpu_seconds = double(utime + stime) / ticks;
  p->resident_bytes = double(rss_pages) * double(sysconf(_SC_PAGESIZE));
  // Start time is in ticks since boot; boot time is in /proc/stat.
  std::ifstream proc_stat("/proc/stat");
  while (std::getline(proc_stat, line))
    if (line.rfind("btime ", 0) == 0)
      p->start_time_seconds = std::stod(line.substr(6)) + double(start) / ticks;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir))
      if (entry->d_name[0] != '.') ++p->open_fds;
    closedir(dir);
    --p->open_fds;  // the one opendir used
  }
  return true;
}

// The topics as /metrics shows them: the first stats.metrics_topics by
// name, then the rest summed into one topic "(other)" with one subscription
// "(other)".
constexpr char kOther[] = "(other)";

std::vector<TopicStats> shown_topics(const Stats& stats) {
  if (stats.topics.size() <= stats.metrics_topics) return stats.topics;
  std::vector<TopicStats> shown(stats.topics.begin(),
                                stats.topics.begin() + stats.metrics_topics);
  TopicStats other;
  other.name = kOther;
  SubscriptionStats others;
  others.name = kOther;
  for (size_t i = stats.metrics_topics; i < stats.topics.size(); ++i) {
    const TopicStats& t = stats.topics[i];
    other.appended_messages += t.appended_messages;
    other.appended_bytes += t.appended_bytes;
    other.stored_messages += t.stored_messages;
    other.stored_bytes += t.stored_bytes;
    other.removed_messages += t.removed_messages;
    other.removed_bytes += t.removed_bytes;
    other.memory_bytes += t.memory_bytes;
    other.scheduled_messages += t.scheduled_messages;
    for (const SubscriptionStats& s : t.subscriptions) {
      others.consumers += s.consumers;
      others.lag += s.lag;
      others.pending += s.pending;
      others.waiting += s.waiting;
      others.delivered += s.delivered;
      others.redelivered += s.redelivered;
      others.acked += s.acked;
      others.nacked += s.nacked;
      others.dead_lettered += s.dead_lettered;
      others.expired += s.expired;
    }
  }
  other.subscriptions.push_back(others);
  shown.push_back(std::move(other));
  return shown;
}

}  // namespace

std::string metrics_text(const Stats& stats) {
  const std::vector<TopicStats> topics = shown_topics(stats);
  Writer w;
  w.family("tern_build_info", "gauge", "Version and fsync policy (always 1).");
  w.sample(1, std::string("version=\"") + kVersion + "\",fsync=\"" +
                  (stats.fsync ? "always" : "never") + "\"");
  w.family("tern_storage_writable", "gauge",
           "1 when the store accepts writes, 0 during a storage fault.");
  w.sample(stats.storage_fault.empty() ? 1 : 0);
  w.family("tern_connections", "gauge", "Client connections open.");
  w.sample(double(stats.connection_list.size()));
  w.family("tern_connections_accepted_total", "counter",
           "Client connections accepted.");
  w.sample(double(stats.connections_accepted));
  w.family("tern_connections_refused_total", "counter",
           "Client connections refused by --max-connections or "
           "--max-connections-per-ip.");
  w.sample(double(stats.connections_refused));
  w.family("tern_dedupe_entries", "gauge",
           "Producer message ids and sequence runs remembered for "
           "de-duplication (bounded by --max-dedupe-ids).");
  w.sample(double(stats.dedupe_entries));
  w.family("tern_memory_budget_bytes", "gauge", "The --memory-budget.");
  w.sample(double(stats.memory_budget));
  w.family("tern_memory_cached_bytes", "gauge",
           "Message records held in memory by all topics.");
  w.sample(double(stats.memory_cached));
  w.family("tern_memory_output_bytes", "gauge",
           "Output queued for all clients.");
  w.sample(double(stats.memory_output));

  auto per_topic = [&](const char* name, const char* type, const char* help,
                       uint64_t TopicStats::*field) {
    w.family(name, type, help);
    for (const TopicStats& t : topics)
      w.sample(double(t.*field), topic_label(t));
  };
  per_topic("tern_topic_appended_messages_total", "counter",
            "Messages appended since the broker started.",
            &TopicStats::appended_messages);
  per_topic("tern_topic_appended_bytes_total", "counter",
            "Record bytes appended since the broker started.",
            &TopicStats::appended_bytes);
  per_topic("tern_topic_stored_messages", "gauge", "Messages stored.",
            &TopicStats::stored_messages);
  per_topic("tern_topic_stored_bytes", "gauge", "Record bytes stored.",
            &TopicStats::stored_bytes);
  per_topic("tern_topic_retention_removed_messages_total", "counter",
            "Messages removed by retention since the broker started.",
            &TopicStats::removed_messages);
  per_topic("tern_topic_retention_removed_bytes_total", "counter",
            "Record bytes removed by retention since the broker started.",
            &TopicStats::removed_bytes);
  per_topic("tern_topic_memory_bytes", "gauge",
            "Record bytes the topic holds in memory.",
            &TopicStats::memory_bytes);
  per_topic("tern_topic_scheduled_messages", "gauge",
            "Scheduled messages stored, not yet due.",
            &TopicStats::scheduled_messages);

  auto per_subscription = [&](const char* name, const char* type,
                              const char* help,
                              uint64_t SubscriptionStats::*field) {
    w.family(name, type, help);
    subscription_samples(
        w, topics, [field](const SubscriptionStats& s) { return s.*field; });
  };
  per_subscription("tern_subscription_delivered_total", "counter",
                   "Messages handed to consumers, redeliveries included.",
                   &SubscriptionStats::delivered);
  per_subscription("tern_subscription_redelivered_total", "counter",
                   "Messages handed to consumers again.",
                   &SubscriptionStats::redelivered);
  per_subscription("tern_subscription_acked_total", "counter",
                   "Messages settled by an ack.", &SubscriptionStats::acked);
  per_subscription("tern_subscription_nacked_total", "counter",
                   "Messages taken back by a nack.",
                   &SubscriptionStats::nacked);
  per_subscription("tern_subscription_dead_lettered_total", "counter",
                   "Messages moved to the dead-letter topic.",
                   &SubscriptionStats::dead_lettered);
  per_subscription("tern_subscription_expired_total", "counter",
                   "Messages whose time to live ended before they were "
                   "handed out (dead-lettered too with dead_letter_expired).",
                   &SubscriptionStats::expired);
  per_subscription("tern_subscription_lag", "gauge",
                   "Committed messages not acked yet.",
                   &SubscriptionStats::lag);
  per_subscription("tern_subscription_pending", "gauge",
                   "Messages delivered and waiting for an ack.",
                   &SubscriptionStats::pending);
  per_subscription("tern_subscription_waiting", "gauge",
                   "Messages taken back, waiting to be delivered again.",
                   &SubscriptionStats::waiting);
  per_subscription("tern_subscription_consumers", "gauge",
                   "Consumers attached.", &SubscriptionStats::consumers);

  w.family("tern_frames_received_total", "counter",
           "Frames received from clients, by type.");
  for (const auto& [type, n] : stats.frames_received)
    w.sample(double(n), "type=\"" + escaped(type) + "\"");
  w.family("tern_errors_sent_total", "counter",
           "Error frames sent to clients, by code.");
  for (const auto& [code, n] : stats.errors_sent)
    w.sample(double(n), "code=\"" + escaped(code) + "\"");
  w.family("tern_commit_writes", "histogram",
           "Writes (messages, cursors, metadata) per storage commit.");
  w.histogram(stats.commit_writes);
  w.family("tern_commit_duration_seconds", "histogram",
           "Duration of a storage commit, fsync included.");
  w.histogram(stats.commit_seconds);

  struct RocksDbFigure {
    const char* property;
    const char* name;
    const char* type;
    const char* help;
  };
  static const RocksDbFigure kRocksDb[] = {
      {"cur-size-all-mem-tables", "tern_rocksdb_memtable_bytes", "gauge",
       "RocksDB memtables, all column families."},
      {"total-sst-files-size", "tern_rocksdb_sst_bytes", "gauge",
       "RocksDB SST files, all column families."},
      {"estimate-pending-compaction-bytes",
       "tern_rocksdb_pending_compaction_bytes", "gauge",
       "Bytes RocksDB estimates compaction has to rewrite."},
      {"is-write-stopped", "tern_rocksdb_write_stopped", "gauge",
       "1 while RocksDB stops writes (too many memtables or L0 files)."},
      {"actual-delayed-write-rate", "tern_rocksdb_delayed_write_rate_bytes",
       "gauge", "The rate RocksDB slows writes to, 0 when it does not."},
      {"background-errors", "tern_rocksdb_background_errors_total", "counter",
       "RocksDB background errors since the store was opened."},
      {"num-running-compactions", "tern_rocksdb_running_compactions", "gauge",
       "RocksDB compactions running."},
      {"num-running-flushes", "tern_rocksdb_running_flushes", "gauge",
       "RocksDB memtable flushes running."}};
  for (const RocksDbFigure& f : kRocksDb) {
    auto it = stats.rocksdb.find(f.property);
    if (it == stats.rocksdb.end()) continue;
    w.family(f.name, f.type, f.help);
    w.sample(double(it->second));
  }

  Process p;
  if (read_process(&p)) {
    w.family("process_cpu_seconds_total", "counter",
             "User and system CPU time spent in seconds.");
    w.sample(p.cpu_seconds);
    w.family("process_resident_memory_bytes", "gauge",
             "Resident memory size in bytes.");
    w.sample(p.resident_bytes);
    w.family("process_open_fds", "gauge", "Number of open file descriptors.");
    w.sample(p.open_fds);
    w.family("process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
    w.sample(p.start_time_seconds);
  }
  return w.text();
}

}  // namespace tern
