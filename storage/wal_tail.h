// WalTailFileSystem: a secondary's view of the primary's live WAL files:
// each reads as ending after its last whole record. Private to storage/
// (rocks_kv.cc) and its tests.
//
// Why: a WAL written over a spare (wal_spare.h) holds zeros past its last
// record. RocksDB's tailing log reader, the one a secondary catches up with,
// takes a zero header for padding and skips to the end of the file: past
// where the primary's next records land, so the secondary would never read
// them. Through this file system a WAL in the primary's directory reads only
// as far as records whose checksums hold; the zeros, and a record the
// primary is still copying in, read as not written yet, and the next catch-up
// reads on from there, as it does over a WAL that grows by appends.
#ifndef CDE_STORAGE_WAL_TAIL_H_
#define CDE_STORAGE_WAL_TAIL_H_

#include <rocksdb/file_system.h>

#include <memory>
#include <string>

namespace cde {

class WalTailFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  // `dir`: the primary's directory (where its WALs are).
  WalTailFileSystem(std::shared_ptr<rocksdb::FileSystem> target,
                    std::string dir);

  const char* Name() const override { return "cde.WalTailFileSystem"; }

  rocksdb::IOStatus NewSequentialFile(
      const std::string& fname, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSSequentialFile>* result,
      rocksdb::IODebugContext* dbg) override;

 private:
  const std::string dir_;
};

// Whether `fname` is a WAL file of the store in `dir` (<dir>/<digits>.log,
// as RocksDB names them).
bool IsWalFileOf(const std::string& dir, const std::string& fname);

}  // namespace cde

#endif  // CDE_STORAGE_WAL_TAIL_H_
