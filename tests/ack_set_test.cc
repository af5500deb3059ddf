// AckSet: the floor and ranges of acked offsets; remove() takes an ack back
// when the Transaction that made it failed to commit.
#include "ack_set.h"

#include <doctest/doctest.h>

namespace tern::test {
namespace {

storage::Cursor cursor(uint64_t floor,
                       std::vector<std::pair<uint64_t, uint64_t>> acked) {
  storage::Cursor c;
  c.ack_floor = floor;
  c.acked = std::move(acked);
  return c;
}

TEST_CASE("ack set: remove takes one offset back, wherever it lies") {
  AckSet acks;
  acks.add(0, 9);  // floor 10
  acks.add(12, 15);
  REQUIRE(acks.floor() == 10);

  SUBCASE("inside a range: split") {
    CHECK(acks.remove(13));
    CHECK(acks.to_cursor().acked == cursor(10, {{12, 12}, {14, 15}}).acked);
    CHECK_FALSE(acks.contains(13));
    CHECK(acks.contains(14));
  }
  SUBCASE("a range's ends") {
    CHECK(acks.remove(12));
    CHECK(acks.remove(15));
    CHECK(acks.to_cursor().acked == cursor(10, {{13, 14}}).acked);
  }
  SUBCASE("below the floor: the floor comes down, the rest stays acked") {
    CHECK(acks.remove(4));
    CHECK(acks.floor() == 4);
    CHECK(acks.to_cursor().acked == cursor(4, {{5, 9}, {12, 15}}).acked);
    CHECK(acks.acked_above_floor() == 9);
    // Acking it again absorbs everything up to the old floor.
    acks.add(4, 4);
    CHECK(acks.floor() == 10);
  }
  SUBCASE("just below the floor") {
    CHECK(acks.remove(9));
    CHECK(acks.floor() == 9);
    CHECK(acks.to_cursor().acked == cursor(9, {{12, 15}}).acked);
  }
  SUBCASE("not acked: nothing changes") {
    CHECK_FALSE(acks.remove(10));
    CHECK_FALSE(acks.remove(11));
    CHECK_FALSE(acks.remove(16));
    CHECK(acks.floor() == 10);
    CHECK(acks.acked_above_floor() == 4);
  }
}

}  // namespace
}  // namespace tern::test
