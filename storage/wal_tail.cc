#include "storage/wal_tail.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string_view>
#include <vector>

#include "storage/crc32c.h"

namespace cde {

namespace {

// RocksDB's (LevelDB's) log format: 32 KiB blocks of physical records, each
// a header (masked CRC32C of what follows it, 2-byte length, 1-byte type;
// the recyclable types add a 4-byte log number) and its payload. A record
// never crosses a block; a block's last bytes, too few for a header, are
// padding. db/log_format.h.
constexpr uint64_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;
constexpr size_t kRecyclableHeaderSize = 11;
constexpr uint8_t kFirstRecyclableType = 5;
constexpr uint8_t kLastRecyclableType = 8;
constexpr uint32_t kMaskDelta = 0xa282ead8u;

uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

uint32_t DecodeFixed32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 |
         uint32_t{u[3]} << 24;
}

// A WAL read sequentially, as far as its last whole record.
class WalTailFile final : public rocksdb::FSSequentialFile {
 public:
  explicit WalTailFile(std::unique_ptr<rocksdb::FSRandomAccessFile> file)
      : file_(std::move(file)) {}

  rocksdb::IOStatus Read(size_t n, const rocksdb::IOOptions& options,
                         rocksdb::Slice* result, char* scratch,
                         rocksdb::IODebugContext* dbg) override {
    if (pos_ + n > whole_) {
      rocksdb::IOStatus s = FindWholeRecords(pos_ + n, options, dbg);
      if (!s.ok()) return s;
    }
    const size_t readable = static_cast<size_t>(
        std::min<uint64_t>(n, whole_ > pos_ ? whole_ - pos_ : 0));
    *result = rocksdb::Slice(scratch, 0);
    if (readable == 0) return rocksdb::IOStatus::OK();
    rocksdb::IOStatus s =
        file_->Read(pos_, readable, options, result, scratch, dbg);
    if (s.ok()) pos_ += result->size();
    return s;
  }

  rocksdb::IOStatus Skip(uint64_t n) override {
    pos_ += n;
    return rocksdb::IOStatus::OK();
  }

 private:
  // Moves whole_ over the records whose checksums hold, until it reaches
  // `want` or a record that does not (zeros, or one still being written).
  rocksdb::IOStatus FindWholeRecords(uint64_t want,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) {
    while (whole_ < want) {
      uint64_t start = whole_;
      const uint64_t left_in_block = kBlockSize - start % kBlockSize;
      // A block's padding counts as written once the record after it is.
      if (left_in_block < kHeaderSize) start += left_in_block;
      rocksdb::Slice header;
      char header_bytes[kRecyclableHeaderSize];
      rocksdb::IOStatus s = file_->Read(start, kRecyclableHeaderSize, options,
                                        &header, header_bytes, dbg);
      if (!s.ok()) return s;
      if (header.size() < kHeaderSize) return s;
      const uint8_t type = static_cast<uint8_t>(header[6]);
      const size_t length = static_cast<uint8_t>(header[4]) |
                            static_cast<size_t>(static_cast<uint8_t>(header[5]))
                                << 8;
      if (type == 0) return s;  // zeros: nothing written here yet
      const size_t header_size =
          type >= kFirstRecyclableType && type <= kLastRecyclableType
              ? kRecyclableHeaderSize
              : kHeaderSize;
      const size_t record_size = header_size + length;
      if (start % kBlockSize + record_size > kBlockSize) return s;
      record_.resize(record_size);
      rocksdb::Slice record;
      s = file_->Read(start, record_size, options, &record, record_.data(),
                      dbg);
      if (!s.ok() || record.size() < record_size) return s;
      const uint32_t expected = Unmask(DecodeFixed32(record.data()));
      if (Crc32c(record.data() + 6, record_size - 6) != expected) return s;
      whole_ = start + record_size;
    }
    return rocksdb::IOStatus::OK();
  }

  std::unique_ptr<rocksdb::FSRandomAccessFile> file_;
  uint64_t pos_ = 0;    // the next byte Read returns
  uint64_t whole_ = 0;  // the end of the last whole record found
  std::vector<char> record_;
};

}  // namespace

bool IsWalFileOf(const std::string& dir, const std::string& fname) {
  // RocksDB joins the path it was given and the name with a '/', and may or
  // may not have dropped a trailing one from the path first.
  auto normal = [](const std::string& p) {
    std::filesystem::path n = std::filesystem::path(p).lexically_normal();
    return n.has_filename() ? n : n.parent_path();
  };
  const std::filesystem::path file = normal(fname);
  if (file.parent_path() != normal(dir)) return false;
  const std::string base = file.filename().string();
  if (base.size() <= 4 || !std::string_view(base).ends_with(".log")) {
    return false;
  }
  return std::all_of(base.begin(), base.end() - 4,
                     [](char c) { return std::isdigit(c) != 0; });
}

WalTailFileSystem::WalTailFileSystem(
    std::shared_ptr<rocksdb::FileSystem> target, std::string dir)
    : FileSystemWrapper(std::move(target)), dir_(std::move(dir)) {}

rocksdb::IOStatus WalTailFileSystem::NewSequentialFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSSequentialFile>* result,
    rocksdb::IODebugContext* dbg) {
  if (!IsWalFileOf(dir_, fname)) {
    return FileSystemWrapper::NewSequentialFile(fname, options, result, dbg);
  }
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  rocksdb::IOStatus s =
      FileSystemWrapper::NewRandomAccessFile(fname, options, &file, dbg);
  if (s.ok()) *result = std::make_unique<WalTailFile>(std::move(file));
  return s;
}

}  // namespace cde
