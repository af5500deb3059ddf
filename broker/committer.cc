#include "committer.h"

#include <chrono>
#include <utility>

#include "log.h"

namespace tern {

namespace {
// Unsynced batches up to this size are written on the loop thread.
constexpr size_t kInlineCommitBytes = 64 * 1024;
// How often a failed store is asked to resume.
constexpr uint64_t kResumeIntervalMs = 1000;
}  // namespace

Committer::Committer(uv_loop_t* loop, storage::Store& store, bool sync,
                     std::function<void()> seal)
    : store_(store),
      sync_(sync),
      seal_(std::move(seal)),
      filling_(std::make_unique<Group>(store)),
      writing_(std::make_unique<Group>(store)) {
  uv_async_init(loop, &async_, on_async);
  async_.data = this;
  uv_timer_init(loop, &resume_timer_);
  resume_timer_.data = this;
  thread_ = std::thread([this] { thread_main(); });
}

Committer::~Committer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Committer::kick() {
  if (in_flight_ || (filling_->empty() && !resume_due_)) return;
  seal_();
  std::swap(filling_, writing_);
  in_flight_ = true;
  writing_->resume = std::exchange(resume_due_, false) && !stopped_;
  bool inline_commit = !sync_ && !writing_->resume &&
                       writing_->batch.bytes() <= kInlineCommitBytes;
  if (stopped_ || inline_commit) {  // commit right here
    write(*writing_);
    committed_ = true;
    finish();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    has_work_ = true;
  }
  cv_.notify_one();
}

void Committer::thread_main() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return has_work_ || stop_; });
      if (!has_work_) return;
      has_work_ = false;
    }
    // writing_ belongs to this thread until uv_async_send below.
    write(*writing_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      committed_ = true;
    }
    uv_async_send(&async_);
  }
}

void Committer::write(Group& group) {
  if (group.resume) group.resumed = store_.resume();
  auto start = std::chrono::steady_clock::now();
  group.status =
      group.batch.empty() ? storage::Status::ok() : store_.commit(group.batch);
  group.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
}

void Committer::on_async(uv_async_t* handle) {
  static_cast<Committer*>(handle->data)->finish();
}

void Committer::finish() {
  {
    // The mutex also orders the storage thread's writes before our reads.
    std::lock_guard<std::mutex> lock(mu_);
    if (!committed_) return;  // uv_async may fire more often than asked
    committed_ = false;
  }
  in_flight_ = false;
  Group& done = *writing_;
  note_outcome(done);
  for (auto& callback : done.done) callback(done.status);
  done.done.clear();
  done.batch.clear();
  done.resume = false;
  kick();
}

void Committer::note_outcome(const Group& group) {
  if (group.resume && group.resumed.is_ok()) {
    log_event(LogLevel::kInfo, "storage_recovered",
              {{"failed_commits", std::to_string(failed_commits_)}},
              "storage: recovered from the fault (RocksDB resumed, %llu "
              "commits failed meanwhile); writes are accepted again",
              (unsigned long long)failed_commits_);
    failing_ = false;  // a failure from now on is a new fault
    failed_commits_ = 0;
  }
  bool committed = group.status.is_ok() && !group.batch.empty();
  if (committed) {
    commit_writes_.observe(group.batch.count());
    commit_seconds_.observe(group.seconds);
  }
  if (!group.status.is_ok()) {
    if (!failing_)
      log_event(LogLevel::kError, "storage_error",
                {{"error", group.status.message()}},
                "storage: a commit of %u writes failed: %s. Until storage "
                "works again, publishes and admin changes get "
                "StorageFailure; stored messages are still delivered%s",
                group.batch.count(), group.status.message().c_str(),
                store_.failed() ? "; resuming is tried every second" : "");
    failing_ = true;
    ++failed_commits_;
  } else if (committed && failing_) {
    LOG_INFO("storage: commits work again (%llu failed meanwhile)",
             (unsigned long long)failed_commits_);
    failing_ = false;
    failed_commits_ = 0;
  }
  // The timer runs only while the store is failed: nothing to do otherwise.
  bool timing = uv_is_active(reinterpret_cast<uv_handle_t*>(&resume_timer_));
  if (store_.failed() && !timing && !stopped_)
    uv_timer_start(&resume_timer_, on_resume_timer, kResumeIntervalMs,
                   kResumeIntervalMs);
}

void Committer::on_resume_timer(uv_timer_t* handle) {
  auto* self = static_cast<Committer*>(handle->data);
  if (!self->store_.failed()) {
    uv_timer_stop(handle);
    return;
  }
  self->resume_due_ = true;
  self->kick();  // now, or when the commit in flight returns
}

void Committer::drain() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  // The thread commits the group it was handed before it exits.
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
  if (in_flight_)
    finish();  // which kicks the rest through synchronously
  else
    kick();
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&resume_timer_), nullptr);
}

}  // namespace tern
