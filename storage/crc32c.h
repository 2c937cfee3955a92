// CRC32C (Castagnoli), the checksum of RocksDB's WAL records and blocks.
//
// Debian builds RocksDB portable, without SSE 4.2, so its CRC32C is a table
// walk of about 1.4 GB/s: about 30 us of the commit writer's CPU per group
// of 64 transitions. This one uses the CPU's crc32 instruction where it has
// one (about 10 GB/s) and a table otherwise. Linked with RocksDB's static
// archive, the programs route RocksDB's own calls here (`--wrap` in
// CMakeLists.txt): the checksums are the same bits, only computed faster,
// so a store written either way reads either way.
#ifndef CDE_STORAGE_CRC32C_H_
#define CDE_STORAGE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace cde {

// The CRC32C of `data` following what `crc` covered (0 for none), as
// rocksdb::crc32c::Extend computes it.
uint32_t Crc32cExtend(uint32_t crc, const char* data, size_t n);

inline uint32_t Crc32c(const char* data, size_t n) {
  return Crc32cExtend(0, data, n);
}

// Whether RocksDB's checksums in this program are computed here (the
// static archive, wrapped), as seen once RocksDB has computed one.
bool RocksDbUsesCrc32cExtend();

namespace crc32c_internal {
// The two ways, for tests; Crc32cExtend picks the instruction when the CPU
// has it.
uint32_t ExtendWithTable(uint32_t crc, const char* data, size_t n);
uint32_t ExtendWithInstruction(uint32_t crc, const char* data, size_t n);
bool CpuHasInstruction();
}  // namespace crc32c_internal

}  // namespace cde

#endif  // CDE_STORAGE_CRC32C_H_
