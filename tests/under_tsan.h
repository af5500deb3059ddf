// kUnderTsan: whether this build runs under ThreadSanitizer (`make tsan`).
//
// Tests that open and destroy RocksDB stores in the test process on a
// file-system wrapper of their own (power cuts, storage faults) skip
// themselves there: RocksDB is not instrumented, its thread pool outlives
// each store, and TSan reports races between the test thread and that pool
// (through the wrapper) that RocksDB orders in ways TSan cannot see. They
// check durability and fault handling, not Tern's threads; `make test` and
// `make asan` run them, and the broker's own committer runs under TSan in
// every test that starts tern-broker.
//
// The Kafka tests (tests/kafka_mock.h) skip too: librdkafka starts its threads
// with C11 thrd_create, which glibc routes around TSan's pthread_create
// interceptor, so the first allocation on such a thread crashes the process.
#pragma once

namespace tern::test {

#ifdef __SANITIZE_THREAD__
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif

}  // namespace tern::test
