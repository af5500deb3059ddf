#include "worker.h"

namespace tern {

Worker::Worker(uv_loop_t* loop) {
  uv_async_init(loop, &async_, on_async);
  async_.data = this;
  thread_ = std::thread([this] { thread_main(); });
}

Worker::~Worker() {
  if (thread_.joinable()) stop();
}

void Worker::post(Job work, Job done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.emplace_back(std::move(work), std::move(done));
  }
  cv_.notify_one();
}

void Worker::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_one();
  thread_.join();
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

void Worker::thread_main() {
  for (;;) {
    std::pair<Job, Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.first();
    if (!job.second) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_.push_back(std::move(job.second));
    }
    uv_async_send(&async_);
  }
}

void Worker::on_async(uv_async_t* handle) {
  auto* self = static_cast<Worker*>(handle->data);
  std::vector<Job> done;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    done.swap(self->finished_);
  }
  for (Job& job : done) job();
}

}  // namespace tern
