// Tests for the storage layer: Store, Batch and the record format.
//
// Every test works in its own fresh directory under /tmp, removed afterwards,
// and reopens the store where durability is the point.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "record.h"
#include "store.h"

namespace fs = std::filesystem;
using tern::storage::Batch;
using tern::storage::Cursor;
using tern::storage::Options;
using tern::storage::Status;
using tern::storage::Store;
using tern::storage::StoredMessage;
using tern::storage::SubscriptionRecord;
using tern::storage::TopicRecord;
using tern::storage::TopicSettings;
using tern::storage::DedupeRecord;

namespace {

// A fresh directory, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/tern-storage-test-XXXXXX";
    char* made = mkdtemp(pattern);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  REQUIRE(out.good());
}

// Every file under `dir` with its contents, to prove nothing was touched.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    std::string name = fs::relative(entry.path(), dir).string();
    files[name] = entry.is_regular_file() ? read_file(entry.path()) : "<dir>";
  }
  return files;
}

std::unique_ptr<Store> open_store(const std::string& path, bool sync = true) {
  Options options;
  options.path = path;
  options.sync = sync;
  std::unique_ptr<Store> store;
  Status s = Store::open(options, &store);
  INFO("open failed: ", s.message());
  REQUIRE(s.is_ok());
  REQUIRE(store != nullptr);
  return store;
}

Status try_open(const std::string& path) {
  Options options;
  options.path = path;
  std::unique_ptr<Store> store;
  Status s = Store::open(options, &store);
  if (s.is_ok()) CHECK(store != nullptr);
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A record as the broker would make it from a published message.
std::string make_record(const std::string& payload, int64_t timestamp_ms = 1000,
                        const std::string& key = "") {
  flatbuffers::FlatBufferBuilder in;
  auto key_vec = key.empty() ? 0
                             : in.CreateVector(
                                   reinterpret_cast<const uint8_t*>(key.data()),
                                   key.size());
  auto header = tern::wire::CreateHeader(
      in, in.CreateString("content-type"),
      in.CreateVector(reinterpret_cast<const uint8_t*>("text/plain"), 10));
  auto headers = in.CreateVector(&header, 1);
  auto body = in.CreateVector(reinterpret_cast<const uint8_t*>(payload.data()),
                              payload.size());
  in.Finish(tern::wire::CreateMessage(in, key_vec, headers, body));
  const auto* message =
      flatbuffers::GetRoot<tern::wire::Message>(in.GetBufferPointer());

  flatbuffers::FlatBufferBuilder out;
  tern::storage::encode_record(out, *message, timestamp_ms);
  return std::string(reinterpret_cast<const char*>(out.GetBufferPointer()),
                     out.GetSize());
}

std::string payload_of(const StoredMessage& message) {
  const auto* record = tern::storage::decode_record(message.record);
  REQUIRE(record != nullptr);
  REQUIRE(record->payload() != nullptr);
  return std::string(reinterpret_cast<const char*>(record->payload()->data()),
                     record->payload()->size());
}

void append(Store& store, uint64_t topic_id, uint64_t first, uint64_t count,
            const std::string& tag) {
  Batch batch(store);
  for (uint64_t offset = first; offset < first + count; ++offset) {
    std::string record = make_record(tag + std::to_string(offset));
    batch.put_message(topic_id, offset, record.data(), record.size());
  }
  Status s = store.commit(batch);
  INFO(s.message());
  REQUIRE(s.is_ok());
}

std::vector<StoredMessage> read_all(Store& store, uint64_t topic_id,
                                    uint64_t from = 0) {
  std::vector<StoredMessage> out;
  Status s = store.read(topic_id, from, 1000000, SIZE_MAX, &out);
  INFO(s.message());
  REQUIRE(s.is_ok());
  return out;
}

// Creates a plain RocksDB database (not a Tern store) at `path`.
void make_foreign_rocksdb(
    const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& entries) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, &raw);
  REQUIRE(s.ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const auto& [key, value] : entries) {
    REQUIRE(db->Put(rocksdb::WriteOptions(), key, value).ok());
  }
  REQUIRE(db->Close().ok());
}

}  // namespace

TEST_CASE("storage: appended messages read back in order with their contents") {
  TempDir dir;
  auto store = open_store(dir.sub("data"));  // does not exist yet

  Batch batch(*store);
  CHECK(batch.empty());
  batch.put_topic({1, "orders", {}, {}});
  for (uint64_t offset = 0; offset < 10; ++offset) {
    std::string record = make_record("payload-" + std::to_string(offset),
                                     5000 + int64_t(offset), "key");
    batch.put_message(1, offset, record.data(), record.size());
  }
  CHECK(batch.count() == 12);  // name and settings, ten messages
  CHECK(batch.bytes() > 0);
  REQUIRE(store->commit(batch).is_ok());
  CHECK(batch.count() == 12);  // commit leaves the batch to the caller
  batch.clear();
  CHECK(batch.empty());

  auto messages = read_all(*store, 1);
  REQUIRE(messages.size() == 10);
  for (uint64_t i = 0; i < 10; ++i) {
    CHECK(messages[i].offset == i);
    const auto* record = tern::storage::decode_record(messages[i].record);
    REQUIRE(record != nullptr);
    CHECK(record->timestamp_ms() == 5000 + int64_t(i));
    CHECK(payload_of(messages[i]) == "payload-" + std::to_string(i));
    REQUIRE(record->key() != nullptr);
    CHECK(std::string(record->key()->begin(), record->key()->end()) == "key");
    REQUIRE(record->headers() != nullptr);
    REQUIRE(record->headers()->size() == 1);
    CHECK(record->headers()->Get(0)->name()->str() == "content-type");
    const auto* value = record->headers()->Get(0)->value();
    CHECK(std::string(value->begin(), value->end()) == "text/plain");
  }
}

TEST_CASE("storage: offset_at_time finds the first message appended then") {
  TempDir dir;
  auto store = open_store(dir.sub("data"));
  // Topic 4: offsets 10..109 appended at 1000, 1010, ... with a hole at
  // 40..59 (as if deleted), and a neighbouring topic that must not count.
  Batch batch(*store);
  for (uint64_t offset = 10; offset < 110; ++offset) {
    if (offset >= 40 && offset < 60) continue;
    std::string record = make_record("m", 1000 + 10 * int64_t(offset - 10));
    batch.put_message(4, offset, record.data(), record.size());
  }
  std::string other = make_record("other", 0);
  batch.put_message(5, 0, other.data(), other.size());
  REQUIRE(store->commit(batch).is_ok());

  auto at = [&](int64_t time_ms, uint64_t first = 10, uint64_t end = 110) {
    uint64_t offset = 12345;
    Status s = store->offset_at_time(4, first, end, time_ms, &offset);
    INFO(s.message());
    REQUIRE(s.is_ok());
    return offset;
  };
  CHECK(at(0) == 10);       // before everything: the first message
  CHECK(at(1000) == 10);    // exactly a message's time
  CHECK(at(1001) == 11);    // between two: the later one
  CHECK(at(1290) == 39);
  CHECK(at(1291) == 60);    // in the hole: the first message after it
  CHECK(at(1500) == 60);
  CHECK(at(1990) == 109);
  CHECK(at(1991) == 110);   // after everything: the end
  CHECK(at(0, 20, 30) == 20);  // only within [first, end)
  CHECK(at(5000, 20, 30) == 30);
  CHECK(at(1000, 200, 200) == 200);  // an empty range
}

TEST_CASE("storage: a message without key or headers keeps them absent") {
  flatbuffers::FlatBufferBuilder in;
  in.Finish(tern::wire::CreateMessage(in, 0, 0, in.CreateVector<uint8_t>({})));
  const auto* message =
      flatbuffers::GetRoot<tern::wire::Message>(in.GetBufferPointer());
  flatbuffers::FlatBufferBuilder out;
  tern::storage::encode_record(out, *message, 7);
  std::string bytes(reinterpret_cast<const char*>(out.GetBufferPointer()),
                    out.GetSize());
  const auto* record = tern::storage::decode_record(bytes);
  REQUIRE(record != nullptr);
  CHECK(record->timestamp_ms() == 7);
  CHECK(record->key() == nullptr);
  CHECK(record->headers() == nullptr);
  REQUIRE(record->payload() != nullptr);
  CHECK(record->payload()->size() == 0);
}

TEST_CASE("storage: read honours from, max_messages and max_bytes") {
  TempDir dir;
  auto store = open_store(dir.path());  // exists and is empty
  append(*store, 3, 0, 20, std::string(100, 'x'));
  const size_t record_size = read_all(*store, 3, 0)[0].record.size();

  std::vector<StoredMessage> out;
  SUBCASE("from in the middle") {
    REQUIRE(store->read(3, 5, 3, SIZE_MAX, &out).is_ok());
    REQUIRE(out.size() == 3);
    CHECK(out[0].offset == 5);
    CHECK(out[1].offset == 6);
    CHECK(out[2].offset == 7);
    CHECK(payload_of(out[0]) == std::string(100, 'x') + "5");
  }
  SUBCASE("near the end returns what there is") {
    REQUIRE(store->read(3, 18, 10, SIZE_MAX, &out).is_ok());
    REQUIRE(out.size() == 2);
    CHECK(out[0].offset == 18);
    CHECK(out[1].offset == 19);
  }
  SUBCASE("past the end returns nothing") {
    REQUIRE(store->read(3, 20, 10, SIZE_MAX, &out).is_ok());
    CHECK(out.empty());
  }
  SUBCASE("max_messages of zero returns nothing") {
    REQUIRE(store->read(3, 0, 0, SIZE_MAX, &out).is_ok());
    CHECK(out.empty());
  }
  SUBCASE("max_bytes below one record still returns one") {
    REQUIRE(store->read(3, 4, 10, 1, &out).is_ok());
    REQUIRE(out.size() == 1);
    CHECK(out[0].offset == 4);
  }
  SUBCASE("max_bytes stops once reached") {
    REQUIRE(store->read(3, 0, 10, record_size * 5 / 2, &out).is_ok());
    CHECK(out.size() == 3);
    REQUIRE(store->read(3, 0, 10, record_size * 2, &out).is_ok());
    CHECK(out.size() == 2);
  }
  SUBCASE("the output is replaced, not appended to") {
    REQUIRE(store->read(3, 0, 2, SIZE_MAX, &out).is_ok());
    REQUIRE(store->read(3, 10, 2, SIZE_MAX, &out).is_ok());
    REQUIRE(out.size() == 2);
    CHECK(out[0].offset == 10);
  }
  SUBCASE("an unknown topic has nothing") {
    REQUIRE(store->read(99, 0, 10, SIZE_MAX, &out).is_ok());
    CHECK(out.empty());
  }
}

TEST_CASE("storage: adjacent topics do not mix") {
  TempDir dir;
  auto store = open_store(dir.path());
  const uint64_t last = UINT64_MAX;
  {
    Batch batch(*store);
    batch.put_topic({7, "seven", {}, {}});
    batch.put_topic({8, "eight", {}, {}});
    batch.put_topic({last - 1, "second-to-last", {}, {}});
    batch.put_topic({last, "last", {}, {}});
    batch.put_topic({0, "zero", {}, {}});
    REQUIRE(store->commit(batch).is_ok());
  }
  // Interleaved appends, and offsets high enough that a little-endian key
  // would sort them into the neighbouring topic.
  for (int round = 0; round < 3; ++round) {
    append(*store, 8, uint64_t(round) * 2, 2, "eight-");
    append(*store, 7, uint64_t(round), 1, "seven-");
  }
  append(*store, 7, 256, 1, "seven-");
  append(*store, last, 0, 2, "last-");
  append(*store, last - 1, 0, 3, "penultimate-");
  append(*store, 0, 0, 1, "zero-");

  auto seven = read_all(*store, 7);
  REQUIRE(seven.size() == 4);
  CHECK(seven[0].offset == 0);
  CHECK(seven[2].offset == 2);
  CHECK(seven[3].offset == 256);
  for (const auto& m : seven) CHECK(payload_of(m).rfind("seven-", 0) == 0);

  auto eight = read_all(*store, 8);
  REQUIRE(eight.size() == 6);
  for (size_t i = 0; i < eight.size(); ++i) {
    CHECK(eight[i].offset == i);
    CHECK(payload_of(eight[i]) == "eight-" + std::to_string(i));
  }
  CHECK(read_all(*store, last).size() == 2);
  CHECK(read_all(*store, last - 1).size() == 3);
  CHECK(read_all(*store, 0).size() == 1);
  CHECK(read_all(*store, 6).empty());
  CHECK(read_all(*store, 9).empty());

  std::vector<TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 5);
  std::map<uint64_t, TopicRecord> by_id;
  for (const auto& t : topics) by_id[t.id] = t;
  CHECK(by_id[0].state.next_offset == 1);
  CHECK(by_id[7].name == "seven");
  CHECK(by_id[7].state.next_offset == 257);
  CHECK(by_id[8].state.next_offset == 6);
  CHECK(by_id[last - 1].state.next_offset == 3);
  CHECK(by_id[last].name == "last");
  CHECK(by_id[last].state.next_offset == 2);
}

TEST_CASE("storage: reopening restores topics and subscriptions") {
  TempDir dir;
  bool sync = true;
  SUBCASE("with fsync") { sync = true; }
  SUBCASE("without fsync") { sync = false; }

  SubscriptionRecord billing;
  billing.topic_id = 1;
  billing.name = "billing";
  billing.ack_timeout_ms = 30000;
  billing.cursor.ack_floor = 3;
  billing.cursor.acked = {{5, 6}, {9, 9}};
  billing.redeliveries = {{7, 2, 0, /*rejected=*/true}, {8, 16, 1234567}};
  billing.skipped = 3;

  SubscriptionRecord audit;
  audit.topic_id = 2;
  audit.name = "audit log";  // names are arbitrary bytes to the store
  audit.ack_timeout_ms = 1;
  audit.cursor.ack_floor = UINT64_MAX;
  audit.skipped = 1ull << 40;  // a skipped count without redeliveries

  {
    auto store = open_store(dir.path(), sync);
    Batch batch(*store);
    batch.put_topic({1, "orders", {}, {}});
    batch.put_topic({2, "empty", {}, {}});
    batch.put_topic({3, "trimmed", {}, {}});
    batch.put_subscription(billing);
    batch.put_subscription(audit);
    SubscriptionRecord gone = billing;
    gone.name = "gone";
    batch.put_subscription(gone);
    REQUIRE(store->commit(batch).is_ok());

    append(*store, 1, 0, 12, "o");
    append(*store, 3, 40, 5, "t");  // as if 0..39 had been deleted

    batch.clear();
    batch.delete_subscription(1, "gone");
    billing.cursor.ack_floor = 4;  // the later write wins
    batch.put_subscription(billing);
    REQUIRE(store->commit(batch).is_ok());
  }

  auto store = open_store(dir.path(), sync);
  std::vector<TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 3);
  CHECK(topics[0].id == 1);
  CHECK(topics[0].name == "orders");
  CHECK(topics[0].state.first_offset == 0);
  CHECK(topics[0].state.next_offset == 12);
  CHECK(topics[1].id == 2);
  CHECK(topics[1].name == "empty");
  CHECK(topics[1].state.first_offset == 0);
  CHECK(topics[1].state.next_offset == 0);
  CHECK(topics[2].id == 3);
  CHECK(topics[2].state.first_offset == 40);
  CHECK(topics[2].state.next_offset == 45);

  std::vector<SubscriptionRecord> subs;
  REQUIRE(store->load_subscriptions(&subs).is_ok());
  REQUIRE(subs.size() == 2);
  CHECK(subs[0].topic_id == 1);
  CHECK(subs[0].name == "billing");
  CHECK(subs[0].ack_timeout_ms == 30000);
  CHECK(subs[0].cursor.ack_floor == 4);
  CHECK(subs[0].cursor.acked == billing.cursor.acked);
  REQUIRE(subs[0].redeliveries.size() == 2);
  CHECK(subs[0].redeliveries[0].attempts == 2);
  CHECK(subs[0].redeliveries[0].rejected);
  CHECK_FALSE(subs[0].redeliveries[1].rejected);
  CHECK(subs[0].redeliveries[1].offset == 8);
  CHECK(subs[0].redeliveries[1].attempts == 16);
  CHECK(subs[0].redeliveries[1].due_ms == 1234567);
  CHECK(subs[0].skipped == 3);
  CHECK(subs[1].topic_id == 2);
  CHECK(subs[1].name == "audit log");
  CHECK(subs[1].ack_timeout_ms == 1);
  CHECK(subs[1].cursor.ack_floor == UINT64_MAX);
  CHECK(subs[1].cursor.acked.empty());
  CHECK(subs[1].redeliveries.empty());
  CHECK(subs[1].skipped == 1ull << 40);

  auto messages = read_all(*store, 1, 10);
  REQUIRE(messages.size() == 2);
  CHECK(payload_of(messages[1]) == "o11");
}

TEST_CASE(
    "storage: a non-empty directory that is not a Tern store is refused") {
  TempDir dir;
  write_file(dir.sub("notes.txt"), "precious\n");
  fs::create_directory(dir.sub("photos"));
  write_file(dir.sub("photos/cat.jpg"), std::string("\xff\xd8\xff", 3));
  auto before = snapshot(dir.path());

  Status s = try_open(dir.path());
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), dir.path()));
  CHECK(contains(s.message(), "is not a Tern data directory"));
  CHECK(snapshot(dir.path()) == before);
}

TEST_CASE("storage: a path that is a file is refused") {
  TempDir dir;
  write_file(dir.sub("file"), "x");
  Status s = try_open(dir.sub("file"));
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), "not a directory"));
  CHECK(read_file(dir.sub("file")) == "x");
}

TEST_CASE("storage: a RocksDB database that is not a Tern store is refused") {
  TempDir dir;
  SUBCASE("without the marker") {
    make_foreign_rocksdb(dir.path(), {{"hello", "world"}});
  }
  SUBCASE("with another marker") {
    make_foreign_rocksdb(dir.path(), {{"F", "tern-store-99"}});
  }
  SUBCASE("with column families Tern does not use") {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* family = nullptr;
    REQUIRE(
        db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "users", &family)
            .ok());
    REQUIRE(db->DestroyColumnFamilyHandle(family).ok());
    REQUIRE(db->Close().ok());
  }
  auto before = snapshot(dir.path());

  Status s = try_open(dir.path());
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), dir.path()));
  CHECK(contains(s.message(), "not a Tern store"));
  CHECK(snapshot(dir.path()) == before);
}

TEST_CASE(
    "storage: an empty store whose creation was interrupted is finished") {
  // Creating a store takes several RocksDB writes before the marker exists. A
  // crash in between leaves a database with no data and no marker, which is
  // completed on the next open rather than refused forever.
  TempDir dir;
  make_foreign_rocksdb(dir.path(), {});
  {
    auto store = open_store(dir.path());
    append(*store, 1, 0, 1, "m");
  }
  auto store = open_store(dir.path());
  CHECK(read_all(*store, 1).size() == 1);
}

TEST_CASE("storage: a store open elsewhere cannot be opened again") {
  TempDir dir;
  auto first = open_store(dir.path());

  Status s = try_open(dir.path());
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), dir.path()));
  CHECK(contains(s.message(), "in use by another broker"));

  // The refused open did not disturb the one that holds the lock.
  append(*first, 1, 0, 2, "m");
  CHECK(read_all(*first, 1).size() == 2);

  first.reset();
  auto second = open_store(dir.path());
  CHECK(read_all(*second, 1).size() == 2);
}

TEST_CASE("storage: a store locked by another process is refused") {
  TempDir dir;
  { open_store(dir.path()); }
  const std::string lock_path = dir.sub("LOCK");
  REQUIRE(fs::exists(lock_path));

  // The child takes the same fcntl lock RocksDB takes, as another broker
  // would, and holds it until the parent closes `release`. Only
  // async-signal-safe calls after fork(): this process has RocksDB threads.
  int ready[2], release[2];
  REQUIRE(pipe(ready) == 0);
  REQUIRE(pipe(release) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(ready[0]);
    close(release[1]);
    alarm(30);  // never outlive a parent that failed to release us
    int fd = open(lock_path.c_str(), O_RDWR);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    char result = (fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0) ? 'y' : 'n';
    if (write(ready[1], &result, 1) != 1) _exit(2);
    char byte;
    while (read(release[0], &byte, 1) > 0) {
    }
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);

  struct pollfd wait_ready = {ready[0], POLLIN, 0};
  char locked = 0;
  bool got =
      poll(&wait_ready, 1, 10000) == 1 && read(ready[0], &locked, 1) == 1;
  Status s = got && locked == 'y' ? try_open(dir.path()) : Status::ok();
  close(release[1]);
  close(ready[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);

  REQUIRE(got);
  REQUIRE(locked == 'y');
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), "in use by another broker"));
  CHECK(contains(s.message(), dir.path()));
  CHECK(WIFEXITED(status));

  // Released: the store opens again.
  open_store(dir.path());
}

TEST_CASE("storage: decode_record rejects corrupt records") {
  std::string good = make_record("hello world", 42, "k");
  REQUIRE(tern::storage::decode_record(good) != nullptr);

  CHECK(tern::storage::decode_record("") == nullptr);
  CHECK(tern::storage::decode_record("abc") == nullptr);
  CHECK(tern::storage::decode_record(good.substr(0, good.size() / 2)) ==
        nullptr);

  // A root offset pointing past the end.
  std::string bad_root = good;
  bad_root[0] = '\xff';
  bad_root[1] = '\xff';
  CHECK(tern::storage::decode_record(bad_root) == nullptr);

  // Every vector length in the record blown up, one at a time: the payload
  // "hello world" is 11 bytes, so find its length field and corrupt it.
  std::string bad_length = good;
  size_t at = bad_length.find("hello world");
  REQUIRE(at != std::string::npos);
  REQUIRE(at >= 4);
  bad_length[at - 1] = '\x7f';
  CHECK(tern::storage::decode_record(bad_length) == nullptr);

  std::mt19937 random(12345);
  for (int i = 0; i < 100; ++i) {
    std::string garbage(64, '\0');
    for (auto& c : garbage) c = static_cast<char>(random());
    CHECK(tern::storage::decode_record(garbage) == nullptr);
  }

  // A damaged value in the store comes back as bytes and is caught on decode.
  TempDir dir;
  auto store = open_store(dir.path());
  Batch batch(*store);
  batch.put_message(1, 0, bad_length.data(), bad_length.size());
  REQUIRE(store->commit(batch).is_ok());
  auto messages = read_all(*store, 1);
  REQUIRE(messages.size() == 1);
  CHECK(tern::storage::decode_record(messages[0].record) == nullptr);
}

TEST_CASE("storage: a malformed subscription record is an error") {
  TempDir dir;
  { open_store(dir.path()); }

  // Write a bad value straight into the metadata family.
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"messages", rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), dir.path(), families,
                              &handles, &raw)
                .ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string key("S\0\0\0\0\0\0\0\1sub", 12);
    std::string value;
    SUBCASE("too short") { value = "abc"; }
    SUBCASE("count larger than the value") {
      value = std::string(16, '\0');
      value[12] = '\xff';
      value[13] = '\xff';
      value[14] = '\xff';
      value[15] = '\x7f';
    }
    SUBCASE("a range ending before it starts") {
      value = std::string(32, '\0');
      value[12] = 1;  // one range
      value[16] = 9;  // first 9, last 0
    }
    REQUIRE(db->Put(rocksdb::WriteOptions(), handles[0], key, value).ok());
    for (auto* handle : handles)
      REQUIRE(db->DestroyColumnFamilyHandle(handle).ok());
    REQUIRE(db->Close().ok());
  }

  auto store = open_store(dir.path());
  std::vector<SubscriptionRecord> subs;
  Status s = store->load_subscriptions(&subs);
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), "malformed subscription"));
}

TEST_CASE("storage: a damaged CURRENT or MANIFEST is an error, not a crash") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    append(*store, 1, 0, 3, "m");
  }
  std::string current = read_file(dir.sub("CURRENT"));
  REQUIRE(current.rfind("MANIFEST-", 0) == 0);
  std::string manifest = current.substr(0, current.find('\n'));
  REQUIRE(fs::exists(dir.sub(manifest)));

  SUBCASE("CURRENT holds garbage") {
    write_file(dir.sub("CURRENT"), "\x01\x02garbage without a newline");
  }
  SUBCASE("CURRENT is empty") { write_file(dir.sub("CURRENT"), ""); }
  SUBCASE("CURRENT names a missing MANIFEST") {
    write_file(dir.sub("CURRENT"), "MANIFEST-999999\n");
  }
  SUBCASE("MANIFEST holds garbage") {
    std::mt19937 random(7);
    std::string garbage(4096, '\0');
    for (auto& c : garbage) c = static_cast<char>(random());
    write_file(dir.sub(manifest), garbage);
  }
  SUBCASE("MANIFEST is truncated to nothing") {
    write_file(dir.sub(manifest), "");
  }

  Status s = try_open(dir.path());
  REQUIRE_FALSE(s.is_ok());
  CHECK(contains(s.message(), dir.path()));
  CHECK(contains(s.message(), "cannot open the Tern store"));
}

TEST_CASE("storage: a range delete and a compaction give the space back") {
  TempDir dir;
  auto store = open_store(dir.sub("data"), /*sync=*/false);
  {
    Batch batch(*store);
    batch.put_topic({1, "logs", {}, {}});
    batch.put_topic({2, "neighbour", {}, {}});
    REQUIRE(store->commit(batch).is_ok());
  }
  // 16 MiB in 4 KiB records, plus one record in the next topic.
  const uint64_t count = 4096;
  std::string payload(4096, 'p');
  for (uint64_t first = 0; first < count; first += 256) {
    Batch batch(*store);
    for (uint64_t offset = first; offset < first + 256; ++offset) {
      std::string record = make_record(payload);
      batch.put_message(1, offset, record.data(), record.size());
    }
    REQUIRE(store->commit(batch).is_ok());
  }
  append(*store, 2, 0, 1, "n");
  REQUIRE(store->compact(1, count).is_ok());  // all of it in files now
  uint64_t before = store->disk_bytes(1);
  CHECK(before > 15u << 20);

  Batch batch(*store);
  batch.delete_messages(1, 0, count - 10);
  batch.put_topic_state(1, {count - 10, count, 10, 10 * 4200});
  REQUIRE(store->commit(batch).is_ok());
  // Deleted at once for readers...
  auto left = read_all(*store, 1);
  REQUIRE(left.size() == 10);
  CHECK(left.front().offset == count - 10);
  // ...and on disk once compacted.
  REQUIRE(store->compact(1, count - 10).is_ok());
  CHECK(store->disk_bytes(1) < before / 50);
  CHECK(read_all(*store, 2).size() == 1);  // the neighbour is untouched

  // The stored state wins over what the keys say: after everything is
  // removed the next offset must not start over.
  Batch all(*store);
  all.delete_messages(1, 0, count);
  all.put_topic_state(1, {count, count, 0, 0});
  REQUIRE(store->commit(all).is_ok());
  store.reset();
  store = open_store(dir.sub("data"));
  std::vector<TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 2);
  CHECK(topics[0].state.first_offset == count);
  CHECK(topics[0].state.next_offset == count);
  CHECK(topics[0].state.messages == 0);
  // A store without state records (written before they existed) is counted.
  CHECK(topics[1].state.next_offset == 1);
  CHECK(topics[1].state.messages == 1);
  CHECK(topics[1].state.bytes > 0);
}

TEST_CASE("storage: topic settings and deleting a whole topic") {
  TempDir dir;
  auto store = open_store(dir.sub("data"));
  TopicSettings settings;
  settings.max_age_ms = 86400000;
  settings.max_bytes = 1ull << 30;
  settings.max_messages = 1000;
  settings.work_queue = true;
  settings.dead_letter_expired = true;
  {
    Batch batch(*store);
    batch.put_topic({5, "jobs", settings, {}});
    batch.put_topic({6, "other", {}, {}});
    SubscriptionRecord sub;
    sub.topic_id = 5;
    sub.name = "workers";
    batch.put_subscription(sub);
    batch.put_dedupe({5, "id-1", 0, 99});
    REQUIRE(store->commit(batch).is_ok());
  }
  append(*store, 5, 0, 20, "j");
  append(*store, 6, 0, 3, "o");
  std::vector<TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 2);
  CHECK(topics[0].settings == settings);
  CHECK(topics[1].settings == TopicSettings{});

  Batch batch(*store);
  batch.delete_topic(5);
  REQUIRE(store->commit(batch).is_ok());
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 1);
  CHECK(topics[0].name == "other");
  CHECK(read_all(*store, 5).empty());
  CHECK(read_all(*store, 6).size() == 3);
  std::vector<SubscriptionRecord> subs;
  REQUIRE(store->load_subscriptions(&subs).is_ok());
  CHECK(subs.empty());
  std::vector<DedupeRecord> ids;
  REQUIRE(store->load_dedupe(&ids).is_ok());
  CHECK(ids.empty());
}

TEST_CASE("storage: messages past the stored next offset are never reused") {
  TempDir dir;
  auto store = open_store(dir.sub("data"));
  {
    Batch batch(*store);
    batch.put_topic({3, "t", {}, {}});
    batch.put_topic_state(3, {0, 6, 6, 600});
    REQUIRE(store->commit(batch).is_ok());
  }
  append(*store, 3, 0, 9, "m");  // three more than the state says
  std::vector<TopicRecord> topics;
  REQUIRE(store->load_topics(&topics).is_ok());
  REQUIRE(topics.size() == 1);
  CHECK(topics[0].state.next_offset == 9);
  CHECK(topics[0].state.messages == 9);
  CHECK(topics[0].state.first_offset == 0);
}
