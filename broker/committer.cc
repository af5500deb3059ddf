#include "committer.h"

#include "log.h"

namespace tern {

namespace {
// Unsynced batches up to this size are written on the loop thread.
constexpr size_t kInlineCommitBytes = 64 * 1024;
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
  if (in_flight_ || filling_->empty()) return;
  seal_();
  std::swap(filling_, writing_);
  in_flight_ = true;
  bool inline_commit = !sync_ && writing_->batch.bytes() <= kInlineCommitBytes;
  if (stopped_ || inline_commit) {  // commit right here
    writing_->status = store_.commit(writing_->batch);
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
    writing_->status = writing_->batch.empty()
                           ? storage::Status::ok()
                           : store_.commit(writing_->batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      committed_ = true;
    }
    uv_async_send(&async_);
  }
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
  if (!done.status.is_ok())
    LOG_ERROR("storage commit of %u writes failed: %s", done.batch.count(),
              done.status.message().c_str());
  for (auto& callback : done.done) callback(done.status);
  done.done.clear();
  done.batch.clear();
  kick();
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
}

}  // namespace tern
