// Built as an object of every program that links RocksDB (CMakeLists.txt),
// not as a member of cde_storage's archive: the linker takes an archive's
// member only for a symbol still missing when it reaches that archive, and
// RocksDB's archive, which asks for __wrap_ below, comes after ours.
#include "storage/crc32c.h"

#include <array>
#include <atomic>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace cde {
namespace crc32c_internal {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78u;  // reflected

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (kPolynomial & (0u - (c & 1)));
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

}  // namespace

uint32_t ExtendWithTable(uint32_t crc, const char* data, size_t n) {
  uint32_t c = crc ^ 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c = kTable[(c ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xffffffffu;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t ExtendWithInstruction(
    uint32_t crc, const char* data, size_t n) {
  uint64_t c = crc ^ 0xffffffffu;
  for (; n >= 8; data += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, data, sizeof word);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++data, --n) {
    c32 = _mm_crc32_u8(c32, static_cast<uint8_t>(*data));
  }
  return c32 ^ 0xffffffffu;
}

bool CpuHasInstruction() {
  // Its first caller may run before the constructor that sets up
  // __builtin_cpu_supports (a static initializer's checksum).
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t ExtendWithInstruction(uint32_t crc, const char* data, size_t n) {
  return ExtendWithTable(crc, data, n);
}

bool CpuHasInstruction() { return false; }
#endif

}  // namespace crc32c_internal

namespace {

using ExtendFn = uint32_t (*)(uint32_t, const char*, size_t);

ExtendFn Chosen() {
  static const ExtendFn chosen = crc32c_internal::CpuHasInstruction()
                                     ? &crc32c_internal::ExtendWithInstruction
                                     : &crc32c_internal::ExtendWithTable;
  return chosen;
}

std::atomic<bool> rocksdb_called{false};

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, const char* data, size_t n) {
  return Chosen()(crc, data, n);
}

bool RocksDbUsesCrc32cExtend() {
  return rocksdb_called.load(std::memory_order_relaxed);
}

}  // namespace cde

// rocksdb::crc32c::Extend(uint32_t, const char*, size_t), for the calls
// that `-Wl,--wrap` sends here from RocksDB's static archive.
extern "C" uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc,
                                                           const char* data,
                                                           size_t n) {
  // Read before written: a store on every call would move the flag's cache
  // line between RocksDB's writer, flush and compaction threads.
  if (!cde::rocksdb_called.load(std::memory_order_relaxed)) {
    cde::rocksdb_called.store(true, std::memory_order_relaxed);
  }
  return cde::Crc32cExtend(crc, data, n);
}
