#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>

#include "storage/store.h"
#include "storage/transition.h"
#include "tests/test_util.h"

namespace cde {
namespace {

// RFC 3720 (iSCSI), B.4, and the common check value.
TEST(Crc32cTest, MatchesTheCastagnoliCheckValues) {
  const std::string zeros(32, '\0');
  const std::string ones(32, '\xff');
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  for (auto extend : {&Crc32cExtend, &crc32c_internal::ExtendWithTable,
                      &crc32c_internal::ExtendWithInstruction}) {
    if (extend == &crc32c_internal::ExtendWithInstruction &&
        !crc32c_internal::CpuHasInstruction()) {
      continue;
    }
    EXPECT_EQ(extend(0, zeros.data(), zeros.size()), 0x8a9136aau);
    EXPECT_EQ(extend(0, ones.data(), ones.size()), 0x62a8ab43u);
    EXPECT_EQ(extend(0, ascending.data(), 32), 0x46dd794eu);
    EXPECT_EQ(extend(0, descending.data(), 32), 0x113fdb5cu);
    EXPECT_EQ(extend(0, "123456789", 9), 0xe3069283u);
    EXPECT_EQ(extend(0, "", 0), 0u);
  }
}

// Every length and alignment, whole and in two pieces, both ways alike.
TEST(Crc32cTest, TheInstructionAndTheTableAgreeInPiecesAndWhole) {
  if (!crc32c_internal::CpuHasInstruction()) {
    GTEST_SKIP() << "this CPU has no crc32 instruction";
  }
  std::mt19937 random(18);
  std::string data(600, '\0');
  for (char& c : data) c = static_cast<char>(random());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; start + n <= data.size(); n += 1 + n / 16) {
      const char* p = data.data() + start;
      const uint32_t whole = crc32c_internal::ExtendWithTable(0, p, n);
      ASSERT_EQ(crc32c_internal::ExtendWithInstruction(0, p, n), whole)
          << "start " << start << ", " << n << " bytes";
      const size_t cut = n / 3;
      const uint32_t first = Crc32cExtend(0, p, cut);
      ASSERT_EQ(Crc32cExtend(first, p + cut, n - cut), whole)
          << "start " << start << ", " << n << " bytes cut at " << cut;
    }
  }
}

// The WAL records in `wal` whose checksums the table confirms, and all of
// them (RocksDB's log format: 32 KiB blocks; a record's masked CRC32C
// covers its type byte, a recyclable record's log number, and its payload).
std::pair<int, int> RecordsTheTableConfirms(const std::string& wal) {
  std::ifstream in(wal, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  int confirmed = 0;
  int records = 0;
  for (size_t at = 0; at + 7 <= bytes.size();) {
    const size_t block_left = 32768 - at % 32768;
    if (block_left < 7) {
      at += block_left;  // a block's padding
      continue;
    }
    const auto* h = reinterpret_cast<const uint8_t*>(bytes.data() + at);
    const uint32_t masked = uint32_t{h[0]} | uint32_t{h[1]} << 8 |
                            uint32_t{h[2]} << 16 | uint32_t{h[3]} << 24;
    const size_t length = size_t{h[4]} | size_t{h[5]} << 8;
    const uint8_t type = h[6];
    if (type == 0) break;  // the zeros after the last record
    const size_t header = type >= 5 ? 11 : 7;
    if (at + header + length > bytes.size()) break;
    const uint32_t rot = masked - 0xa282ead8u;
    const uint32_t crc = (rot >> 17) | (rot << 15);
    ++records;
    if (crc32c_internal::ExtendWithTable(0, bytes.data() + at + 6,
                                         header - 6 + length) == crc) {
      ++confirmed;
    }
    at += header + length;
  }
  return {confirmed, records};
}

// With RocksDB's static archive, its WAL records are checksummed here (the
// --wrap of CMakeLists.txt): the bits RocksDB's own table computes, as the
// table here confirms record by record; and a store written so reopens.
TEST(Crc32cTest, RocksDbChecksumsItsWalHereAndReadsItBack) {
  test::TempDir dir;
  {
    auto store = OpenRocksStore({.path = dir.path()});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Transition t;
    t.PutIdempotency("key", "saga-1");
    const Transition* batch[] = {&t};
    ASSERT_TRUE((*store)->Write(batch, /*sync=*/true).ok());
    // Read while the store is open: closing flushes the memtables and
    // retires the WAL.
    int wals = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      if (entry.path().extension() != ".log") continue;
      ++wals;
      const auto [confirmed, records] =
          RecordsTheTableConfirms(entry.path().string());
      EXPECT_GT(records, 0) << entry.path();
      EXPECT_EQ(confirmed, records) << entry.path();
    }
    EXPECT_GT(wals, 0);
  }
#ifdef CDE_ROCKSDB_CRC32C_WRAPPED
  EXPECT_TRUE(RocksDbUsesCrc32cExtend());
#else
  EXPECT_FALSE(RocksDbUsesCrc32cExtend());
#endif
  auto reopened = OpenRocksStore({.path = dir.path()});
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto saga = (*reopened)->LookupIdempotency("key");
  ASSERT_TRUE(saga.ok()) << saga.status().ToString();
  EXPECT_EQ(*saga, "saga-1");
}

}  // namespace
}  // namespace cde
