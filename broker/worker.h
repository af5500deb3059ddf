// Worker: one background thread for store work the loop thread must not wait
// for — retention's scans and compactions. Jobs run one at a time in the
// order posted; each job's `done` then runs on the loop thread, where it may
// touch the broker's state again.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace tern {

class Worker {
 public:
  using Job = std::function<void()>;

  explicit Worker(uv_loop_t* loop);
  ~Worker();  // stop() must have run

  // Runs `work` on the worker thread, then `done` (if any) on the loop thread.
  void post(Job work, Job done = nullptr);

  // Lets the running job finish, drops the queued ones (their `done` never
  // runs) and joins the thread. Loop thread, once, at shutdown.
  void stop();

 private:
  static void on_async(uv_async_t* handle);
  void thread_main();

  uv_async_t async_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Job, Job>> queue_;  // guarded by mu_
  std::vector<Job> finished_;              // guarded by mu_: dones to run
  bool stop_ = false;                      // guarded by mu_
  std::thread thread_;
};

}  // namespace tern
