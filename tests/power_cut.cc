#include "power_cut.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

#include "power_cut_fs.h"
#include "store.h"

namespace tern::test {

namespace {

using storage::Batch;
using storage::Status;
using storage::Store;

constexpr uint64_t kTopic = 1;
const char kSubscription[] = "s";
// Retention keeps the store small over hundreds of iterations.
constexpr uint64_t kKeepMessages = 20000;

// Message `offset`'s bytes: the same whenever it is written, so an offset
// written again after a cut holds what it held.
std::string payload(uint64_t offset) {
  std::string text = "message " + std::to_string(offset) + " ";
  size_t size = 20 + (offset * 2654435761u) % 400;
  while (text.size() < size) text += char('a' + (offset + text.size()) % 26);
  return text;
}

// What was confirmed so far, across iterations.
struct Confirmed {
  uint64_t first = 0;  // below: removed by a confirmed retention delete
  uint64_t end = 0;    // every message in [first, end) was confirmed
  uint64_t floor = 0;  // the last confirmed cursor's ack floor
};

class Loop {
 public:
  Loop(const PowerCutOptions& options, PowerCutReport* report)
      : options_(options), report_(*report), rng_(report->seed) {
    char pattern[] = "/tmp/tern-power-cut-XXXXXX";
    if (mkdtemp(pattern) == nullptr) std::abort();
    root_ = pattern;
    path_ = root_ + "/store";
    backups_ = root_ + "/backups";
    std::filesystem::create_directories(backups_);
  }
  ~Loop() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  // One iteration: reopen, check, write until the power goes off.
  bool iterate(bool last) {
    auto fs = std::make_shared<PowerCutFs>(backups_);
    std::unique_ptr<Store> store;
    if (!open(fs, &store)) return false;
    if (!check(*store)) return false;
    if (last) return true;
    write_until_cut(*store, *fs);
    store.reset();  // closing meets the dead disk too
    std::string error = fs->settle();
    if (!error.empty()) return fail("settle: " + error);
    return true;
  }

 private:
  bool fail(const std::string& what) {
    report_.violations.push_back(
        "iteration " + std::to_string(report_.iterations) + ": " + what);
    return false;
  }

  bool open(std::shared_ptr<PowerCutFs> fs, std::unique_ptr<Store>* store) {
    storage::Options o;
    o.path = path_;
    o.sync = options_.sync;
    o.file_system = std::move(fs);
    Status s = Store::open(o, store);
    if (!s.is_ok()) return fail("the store does not open: " + s.message());
    return true;
  }

  // The store against what was confirmed; sets next_ and state_.
  bool check(Store& store) {
    std::vector<storage::TopicRecord> topics;
    Status s = store.load_topics(&topics);
    if (!s.is_ok()) return fail("load_topics: " + s.message());
    storage::TopicState state;
    for (const auto& t : topics)
      if (t.id == kTopic) state = t.state;
    // Every stored message holds its bytes, with no hole from the first
    // stored one on.
    uint64_t expect = state.first_offset;
    uint64_t bad = 0, holes = 0;
    s = store.scan(kTopic, 0,
                   [&](uint64_t offset, const char* data, size_t size) {
                     if (offset != expect) ++holes;
                     if (std::string(data, size) != payload(offset)) ++bad;
                     expect = offset + 1;
                     return true;
                   });
    if (!s.is_ok()) return fail("scan: " + s.message());
    if (bad) return fail(std::to_string(bad) + " messages with wrong bytes");
    if (holes) return fail("messages missing between stored ones");
    uint64_t stored_end = expect;
    // A confirmed retention delete removed [.., confirmed_.first); one not
    // confirmed may have been stored too.
    uint64_t checked_from = std::max(confirmed_.first, state.first_offset);
    if (state.first_offset > checked_from || stored_end < confirmed_.end) {
      uint64_t lost = confirmed_.end > std::max(stored_end, checked_from)
                          ? confirmed_.end - std::max(stored_end, checked_from)
                          : 0;
      report_.lost += lost;
      if (options_.sync && lost)
        fail(std::to_string(lost) + " confirmed messages lost (stored up to " +
             std::to_string(stored_end) + ", confirmed up to " +
             std::to_string(confirmed_.end) + ")");
    }
    std::vector<storage::SubscriptionRecord> subs;
    s = store.load_subscriptions(&subs);
    if (!s.is_ok()) return fail("load_subscriptions: " + s.message());
    uint64_t floor = 0;
    for (const auto& sub : subs)
      if (sub.topic_id == kTopic && sub.name == kSubscription)
        floor = sub.cursor.ack_floor;
    if (floor < confirmed_.floor) {
      ++report_.cursors_behind;
      if (options_.sync)
        fail("cursor at " + std::to_string(floor) + ", confirmed at " +
             std::to_string(confirmed_.floor));
    }
    if (!options_.sync) {
      // What is stored is now what counts as confirmed.
      confirmed_.end = std::min(confirmed_.end, stored_end);
      confirmed_.floor = std::min(confirmed_.floor, floor);
      confirmed_.first = std::max(confirmed_.first, state.first_offset);
    }
    state.next_offset = std::max(state.next_offset, stored_end);
    state_ = state;
    return report_.violations.empty();
  }

  void write_until_cut(Store& store, PowerCutFs& fs) {
    fs.cut_after(std::uniform_int_distribution<uint64_t>(1, 600)(rng_));
    for (int commits = 0; !fs.cut(); ++commits) {
      Batch batch(store);
      if (state_.next_offset == 0 && commits == 0)
        batch.put_topic({kTopic, "power-cut", {}, {}});
      int count = std::uniform_int_distribution<int>(1, 20)(rng_);
      for (int i = 0; i < count; ++i) {
        std::string bytes = payload(state_.next_offset + i);
        batch.put_message(kTopic, state_.next_offset + i, bytes.data(),
                          bytes.size());
      }
      storage::TopicState state = state_;
      state.next_offset += count;
      state.messages += count;
      bool trim = state.next_offset - state.first_offset > 2 * kKeepMessages;
      if (trim) {
        uint64_t cut = state.next_offset - kKeepMessages;
        batch.delete_messages(kTopic, state.first_offset, cut);
        state.first_offset = cut;
      }
      batch.put_topic_state(kTopic, state);
      storage::SubscriptionRecord sub;
      sub.topic_id = kTopic;
      sub.name = kSubscription;
      sub.cursor.ack_floor = std::uniform_int_distribution<uint64_t>(
          std::max(confirmed_.floor, state.first_offset),
          state.next_offset)(rng_);
      batch.put_subscription(sub);
      if (!store.commit(batch).is_ok()) break;  // the power went off
      state_ = state;
      confirmed_.end = state.next_offset;
      confirmed_.floor = sub.cursor.ack_floor;
      if (trim) confirmed_.first = state.first_offset;
      report_.confirmed += count;
      if (commits % 25 == 24) {
        // A flush and a compaction, which the cut may hit.
        store.compact(kTopic, state.next_offset);
        if (fs.cut()) ++report_.cuts_in_compaction;
      }
    }
  }

  const PowerCutOptions& options_;
  PowerCutReport& report_;
  std::mt19937_64 rng_;
  std::string root_, path_, backups_;
  Confirmed confirmed_;
  storage::TopicState state_;
};

}  // namespace

std::string PowerCutReport::summary() const {
  char line[256];
  std::snprintf(line, sizeof line,
                "power cuts: %d iterations (seed %llu), %llu messages "
                "confirmed, lost %llu, cursors behind %llu, %llu cuts during "
                "a compaction, %.1f s",
                iterations, (unsigned long long)seed,
                (unsigned long long)confirmed, (unsigned long long)lost,
                (unsigned long long)cursors_behind,
                (unsigned long long)cuts_in_compaction, seconds);
  return line;
}

PowerCutReport run_power_cuts(const PowerCutOptions& options) {
  PowerCutReport report;
  report.seed = options.seed ? options.seed : std::random_device()();
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  Loop loop(options, &report);
  while (report.iterations < options.iterations &&
         elapsed() < options.seconds) {
    if (!loop.iterate(false)) break;
    ++report.iterations;
    if (options.verbose && report.iterations % 10 == 0) {
      std::printf("  %d iterations, %llu confirmed, lost %llu, %.0f s\n",
                  report.iterations, (unsigned long long)report.confirmed,
                  (unsigned long long)report.lost, elapsed());
      std::fflush(stdout);
    }
  }
  if (report.violations.empty()) loop.iterate(true);  // the last cut's check
  report.seconds = elapsed();
  return report;
}

}  // namespace tern::test
