// Committer: group commit. The loop thread fills a batch with everything that
// arrived in one loop iteration (appends from every connection, cursor
// updates, metadata); the storage thread writes it with one RocksDB Write
// (one fsync with --fsync always) and reports back through uv_async. While a
// commit is in flight the next batch fills, so the number of fsyncs adapts to
// the disk: the slower the sync, the more each one carries.
//
// With --fsync never a small batch is written on the loop thread itself when
// nothing is in flight: without an fsync that costs microseconds, less than
// the two thread hand-offs it saves, and it halves the latency of a lone
// message. Large batches still go to the storage thread.
//
// Storage faults: after a failed commit, every later one fails too until
// storage works again; the log says so once when the first fails and once
// when commits work again, not for each. While the store is failed (a
// RocksDB background error: storage/store.h), a one-second timer asks the
// storage thread to try Store::resume() before its next commit, so the
// broker recovers by itself once the fault clears and the loop never waits
// on it. Without a fault, all this costs a commit one flag check.
//
// Everything except the storage thread's body runs on the loop thread.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "metric_histogram.h"
#include "store.h"

namespace tern {

class Committer {
 public:
  // Runs on the loop thread once the batch it was added to is committed (or
  // failed); status says which.
  using Done = std::function<void(const storage::Status&)>;

  // `sync`: whether commits fsync (--fsync always). `seal` runs on the loop
  // thread right before the filling batch is handed over, whoever kicks it:
  // the last writes that must go with everything in it.
  Committer(uv_loop_t* loop, storage::Store& store, bool sync,
            std::function<void()> seal);
  ~Committer();

  // The batch being filled, and a way to be told when it is committed.
  storage::Batch& batch() { return filling_->batch; }
  void on_commit(Done done) { filling_->done.push_back(std::move(done)); }

  // Commits so far (for metrics; loop thread): how many writes each carried,
  // and how long each took, fsync included.
  const MetricHistogram& commit_writes() const { return commit_writes_; }
  const MetricHistogram& commit_seconds() const { return commit_seconds_; }

  // Hands the filling batch to the storage thread, unless one is in flight
  // (then it goes as soon as that one returns). Call once per loop iteration.
  void kick();

  // Commits whatever is left synchronously and stops the thread. For shutdown.
  void drain();

 private:
  struct Group {
    explicit Group(storage::Store& store) : batch(store) {}
    bool empty() const { return batch.empty() && done.empty(); }
    storage::Batch batch;
    std::vector<Done> done;
    storage::Status status = storage::Status::ok();
    double seconds = 0;   // how long the commit took (write and fsync)
    bool resume = false;  // try Store::resume() before committing
    storage::Status resumed = storage::Status::ok();
  };

  static void on_async(uv_async_t* handle);
  static void on_resume_timer(uv_timer_t* handle);
  void finish();
  void thread_main();
  // What the storage thread does with the group handed over.
  void write(Group& group);
  // The log lines and the resume timer after `group` came back.
  void note_outcome(const Group& group);

  storage::Store& store_;
  const bool sync_;
  const std::function<void()> seal_;
  uv_async_t async_;
  std::unique_ptr<Group> filling_;  // loop thread only
  std::unique_ptr<Group> writing_;  // owned by the storage thread while in flight
  bool in_flight_ = false;          // loop thread only
  bool stopped_ = false;            // loop thread only: drain() ran

  MetricHistogram commit_writes_{
      {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384}};
  MetricHistogram commit_seconds_{{0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                   0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}};

  // Faults (loop thread only).
  uv_timer_t resume_timer_;
  bool resume_due_ = false;      // the next group handed over tries resume()
  bool failing_ = false;         // the last commit failed
  uint64_t failed_commits_ = 0;  // since the last one that worked

  std::mutex mu_;
  std::condition_variable cv_;
  bool has_work_ = false;   // guarded by mu_: writing_ handed over
  bool committed_ = false;  // guarded by mu_: writing_ committed
  bool stop_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace tern
