// libFuzzer target: arbitrary bytes as a subscription record in a real store.
//
// The subscription record (key "S" | topic id | name, value = ack timeout,
// ack floor and acked ranges; see storage/store.cc) is decoded by
// Store::load_subscriptions when the broker starts, from whatever the disk
// holds. Its decoder is private to store.cc, so this target goes the long
// way round, like a damaged disk would: it writes the value with plain
// RocksDB into a real Tern store, opens the store, and loads.
//
// Input: one byte, the name's length (mod 32); the name; the rest is the
// value. A record the store accepts must be well formed (ranges ordered,
// disjoint, first <= last) and must survive a write through Batch and a
// reload unchanged. A record it refuses must be refused with a message.
//
// Each input costs two RocksDB opens, so this target runs far fewer inputs
// per second than the others; the decoder is small enough for that.
#include <rocksdb/db.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store.h"

namespace {

namespace storage = tern::storage;

constexpr uint64_t kTopicId = 7;
std::string g_dir;

[[noreturn]] void fail(const std::string& what) {
  fprintf(stderr, "cursor_fuzz: %s\n", what.c_str());
  abort();
}

std::string subscription_key(const std::string& name) {
  std::string key(1, 'S');
  for (int i = 7; i >= 0; --i)
    key.push_back(static_cast<char>((kTopicId >> (8 * i)) & 0xff));
  return key + name;
}

// Replaces every subscription record in the store with key -> value, using
// RocksDB directly (the store's own API only writes well-formed records).
void write_raw(const std::string& key, const std::string& value) {
  rocksdb::DBOptions options;
  options.keep_log_file_num = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"messages", rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(options, g_dir, families, &handles, &raw);
  if (!s.ok()) fail("raw open: " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), handles[0]));
  for (it->Seek("S"); it->Valid() && it->key()[0] == 'S'; it->Next())
    batch.Delete(handles[0], it->key());
  it.reset();
  batch.Put(handles[0], key, value);
  s = db->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) fail("raw write: " + s.ToString());
  for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
  db->Close();
}

std::unique_ptr<storage::Store> open_store() {
  std::unique_ptr<storage::Store> store;
  storage::Status s = storage::Store::open({g_dir, /*sync=*/false}, &store);
  if (!s.is_ok()) fail("open: " + s.message());
  return store;
}

bool same(const storage::SubscriptionRecord& a,
          const storage::SubscriptionRecord& b) {
  return a.topic_id == b.topic_id && a.name == b.name &&
         a.ack_timeout_ms == b.ack_timeout_ms &&
         a.cursor.ack_floor == b.cursor.ack_floor &&
         a.cursor.acked == b.cursor.acked;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char pattern[] = "/tmp/tern-cursor-fuzz-XXXXXX";
  if (mkdtemp(pattern) == nullptr) fail("mkdtemp failed");
  g_dir = std::string(pattern) + "/store";
  open_store();  // creates it
  atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(g_dir).parent_path(), ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t name_size = data[0] % 32;
  if (size - 1 < name_size) return 0;
  std::string name(reinterpret_cast<const char*>(data + 1), name_size);
  std::string value(reinterpret_cast<const char*>(data + 1 + name_size),
                    size - 1 - name_size);
  write_raw(subscription_key(name), value);

  auto store = open_store();
  std::vector<storage::SubscriptionRecord> loaded;
  storage::Status s = store->load_subscriptions(&loaded);
  if (!s.is_ok()) {
    if (s.message().empty()) fail("a refused record without a message");
    return 0;
  }
  if (loaded.size() != 1)
    fail("one record written, " + std::to_string(loaded.size()) + " loaded");
  const storage::SubscriptionRecord& sub = loaded[0];
  if (sub.topic_id != kTopicId || sub.name != name)
    fail("the record came back under another key");
  for (size_t i = 0; i < sub.cursor.acked.size(); ++i) {
    const auto& [first, last] = sub.cursor.acked[i];
    if (first > last) fail("an accepted range with first > last");
    if (i > 0 && first <= sub.cursor.acked[i - 1].second)
      fail("accepted ranges that overlap or are out of order");
  }

  // What was accepted must round-trip through the store's own encoder.
  storage::Batch batch(*store);
  batch.put_subscription(sub);
  s = store->commit(batch);
  if (!s.is_ok()) fail("commit: " + s.message());
  std::vector<storage::SubscriptionRecord> again;
  s = store->load_subscriptions(&again);
  if (!s.is_ok()) fail("reload of a re-encoded record: " + s.message());
  if (again.size() != 1 || !same(again[0], sub))
    fail("a re-encoded record loads differently");
  return 0;
}
