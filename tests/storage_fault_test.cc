// Storage faults, injected through FaultFs (tests/fault_fs.h): a failed WAL
// write or sync, a failed flush, a failed compaction, a failed MANIFEST write
// and rename. Each test checks that the failed commit is reported as failed
// (never as committed), that the store refuses writes while it is failed,
// that it writes again after resume() once the fault is gone — without
// reopening — and that after a reopen everything committed is there.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "committer.h"
#include "fault_fs.h"
#include "store.h"
#include "under_tsan.h"

namespace tern::test {
namespace {

using storage::Batch;
using storage::Status;
using storage::Store;

constexpr uint64_t kTopic = 7;

// A store on a FaultFs in a fresh directory (removed at the end), and the
// messages committed to it so far: message i holds "message <i>".
struct FaultyStore {
  FaultyStore() {
    char pattern[] = "/tmp/tern-fault-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path = pattern;
    open();
  }
  ~FaultyStore() {
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  void open() {
    storage::Options options;
    options.path = path;
    options.sync = true;
    options.file_system = fs;
    Status s = Store::open(options, &store);
    REQUIRE_MESSAGE(s.is_ok(), s.message());
  }

  // Adds `count` more messages to `batch`; returns their offsets [from, to).
  // A batch that fails leaves a hole, as in the broker.
  std::pair<uint64_t, uint64_t> fill(Batch& batch, int count) {
    for (int i = 0; i < count; ++i) {
      std::string value = "message " + std::to_string(next + i);
      batch.put_message(kTopic, next + i, value.data(), value.size());
    }
    next += count;
    return {next - count, next};
  }

  // Commits `count` more messages in one batch; on success they count as
  // committed.
  Status append(int count) {
    Batch batch(*store);
    auto range = fill(batch, count);
    Status s = store->commit(batch);
    if (s.is_ok()) committed.push_back(range);
    return s;
  }

  // Every committed message is there with its contents.
  void check_committed() {
    for (auto [from, to] : committed) {
      std::vector<storage::StoredMessage> got;
      REQUIRE(store->read(kTopic, from, to - from, 1 << 30, &got).is_ok());
      REQUIRE(got.size() == to - from);
      for (uint64_t i = from; i < to; ++i) {
        CHECK(got[i - from].offset == i);
        CHECK(got[i - from].record == "message " + std::to_string(i));
      }
    }
  }

  // Reopens on the same directory (the fault gone) and checks.
  void reopen_and_check() {
    store.reset();
    fs->clear();
    open();
    check_committed();
  }

  // `trigger` sets a fault and does what meets it: it must fail, and the
  // store must refuse commits. While a fault on the write path (`blocks`)
  // remains, resuming does not make anything commit. Once it is cleared,
  // resume() and commits work again, and nothing committed is lost across
  // a reopen.
  template <typename Trigger>
  void survive(Trigger trigger, bool blocks = true) {
    REQUIRE(append(100).is_ok());
    Status failed = trigger();
    CHECK_FALSE(failed.is_ok());
    CHECK(fs->failures() > 0);
    CHECK(store->failed());
    Status refused = append(5);
    CHECK_FALSE(refused.is_ok());
    CHECK(refused.message().find("read-only") != std::string::npos);
    if (blocks) {
      // Resume may succeed (a WAL write fault only meets the next write),
      // but the commit after it may not.
      CHECK_FALSE((store->resume().is_ok() && append(5).is_ok()));
      CHECK(store->failed());
    }

    fs->clear();
    Status resumed = store->resume();
    REQUIRE_MESSAGE(resumed.is_ok(), resumed.message());
    CHECK_FALSE(store->failed());
    REQUIRE(append(10).is_ok());
    check_committed();
    reopen_and_check();
    REQUIRE(append(10).is_ok());
    check_committed();
  }

  std::shared_ptr<FaultFs> fs = std::make_shared<FaultFs>();
  std::string path;
  std::unique_ptr<Store> store;
  uint64_t next = 0;
  std::vector<std::pair<uint64_t, uint64_t>> committed;  // [from, to)
};

TEST_CASE("storage faults: a failed WAL sync is never a commit" *
          doctest::skip(kUnderTsan)) {
  FaultyStore s;
  s.survive([&] {
    s.fs->fail(FaultFs::kSync, ".log");
    return s.append(10);
  });
}

TEST_CASE("storage faults: a failed WAL write is never a commit" *
          doctest::skip(kUnderTsan)) {
  FaultyStore s;
  s.survive([&] {
    s.fs->fail(FaultFs::kWrite, ".log");
    return s.append(10);
  });
}

TEST_CASE("storage faults: a failed flush makes the store read-only" *
          doctest::skip(kUnderTsan)) {
  FaultyStore s;
  s.survive([&] {
    s.fs->fail(FaultFs::kWrite, ".sst", "rocksdb:high");
    return s.store->compact(kTopic, s.next);  // flushes first
  });
}

TEST_CASE("storage faults: a failed compaction makes the store read-only" *
          doctest::skip(kUnderTsan)) {
  FaultyStore s;
  // Something flushed already, so the compaction below has files to merge.
  REQUIRE(s.append(100).is_ok());
  REQUIRE(s.store->compact(kTopic, s.next).is_ok());
  s.survive(
      [&] {
        s.fs->fail(FaultFs::kWrite, ".sst", "rocksdb:low");
        return s.store->compact(kTopic, s.next);
      },
      /*blocks=*/false);  // resuming only retries the compaction later
}

TEST_CASE("storage faults: a failed MANIFEST write, then a failed rename" *
          doctest::skip(kUnderTsan)) {
  FaultyStore s;
  s.survive([&] {
    s.fs->fail(FaultFs::kWrite, "MANIFEST");
    Status flush = s.store->compact(kTopic, s.next);
    // Recovering writes a new MANIFEST and renames CURRENT to it.
    s.fs->fail(FaultFs::kRename, "CURRENT");
    return flush;
  });
}

// The broker's group commit (broker/committer.h) on a faulty store, run on
// a loop of its own.
struct CommitterOnFaultyStore {
  CommitterOnFaultyStore() {
    uv_loop_init(&loop);
    committer = std::make_unique<Committer>(&loop, *s.store, true, [] {});
    // Wakes the loop often, so the waits below end on time even when
    // nothing else happens.
    uv_timer_init(&loop, &wake);
    uv_timer_start(
        &wake, [](uv_timer_t*) {}, 50, 50);
  }
  ~CommitterOnFaultyStore() {
    committer->drain();
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);  // closes the handles
    committer.reset();
    uv_loop_close(&loop);
  }

  // Commits `count` more messages through the committer; what it reported.
  Status append(int count) {
    auto range = s.fill(committer->batch(), count);
    bool done = false;
    Status result = Status::ok();
    committer->on_commit([&](const Status& status) {
      done = true;
      result = status;
    });
    committer->kick();
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < until)
      uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(done);
    if (result.is_ok()) s.committed.push_back(range);
    return result;
  }

  FaultyStore s;
  uv_loop_t loop;
  uv_timer_t wake;
  std::unique_ptr<Committer> committer;
};

TEST_CASE(
    "storage faults: the committer confirms no failed sync, resumes "
    "by itself" *
    doctest::skip(kUnderTsan)) {
  CommitterOnFaultyStore c;
  REQUIRE(c.append(10).is_ok());
  c.s.fs->fail(FaultFs::kSync, ".log");
  CHECK_FALSE(c.append(10).is_ok());
  CHECK(c.s.store->failed());
  CHECK_FALSE(c.append(10).is_ok());  // read-only, without a WAL write
  // While the fault lasts, the committer's resume attempts fail.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < until) uv_run(&c.loop, UV_RUN_ONCE);
  CHECK(c.s.store->failed());

  c.s.fs->clear();
  until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (c.s.store->failed() && std::chrono::steady_clock::now() < until)
    uv_run(&c.loop, UV_RUN_ONCE);
  CHECK_FALSE(c.s.store->failed());
  REQUIRE(c.append(10).is_ok());
  c.s.check_committed();
}

}  // namespace
}  // namespace tern::test
