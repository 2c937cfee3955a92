#include "storage/wal_spare.h"

#include <algorithm>

#include "storage/wal_tail.h"

namespace cde {

namespace {

// A WAL as RocksDB writes it, counting what is appended so that the file
// system can prepare the next spare once this one is in real use.
class CountedWal final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CountedWal(std::unique_ptr<rocksdb::FSWritableFile> file,
             WalSpareFileSystem* fs, bool over_spare)
      : FSWritableFileOwnerWrapper(std::move(file)),
        fs_(fs),
        over_spare_(over_spare) {}

  // Closed (a clean shutdown, or a WAL done with): a WAL over a spare ends
  // where its records do, so that a clean close leaves no zeros to read
  // through. RocksDB trims only space it preallocated itself, which a WAL
  // that took nothing never did. GetFileSize is what was written.
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (over_spare_) {
      rocksdb::IOStatus s =
          target()->Truncate(target()->GetFileSize(options, dbg), options, dbg);
      if (!s.ok()) {
        target()->Close(options, dbg).PermitUncheckedError();
        return s;
      }
    }
    return target()->Close(options, dbg);
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    Count(data.size());
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    Count(data.size());
    return target()->Append(data, options, info, dbg);
  }

 private:
  void Count(size_t n) {
    appended_ += n;
    if (!triggered_ && appended_ >= WalSpareFileSystem::kSpareTrigger) {
      triggered_ = true;
      fs_->WantSpare();
    }
  }

  WalSpareFileSystem* fs_;
  const bool over_spare_;
  uint64_t appended_ = 0;
  bool triggered_ = false;
};

// Written in pieces of this size, each synced before the next: a spare never
// puts more than this much of its writeback in the device's queue ahead of
// the WAL's own fdatasync. Through the page cache: written with O_DIRECT the
// zeros cost less system CPU, but the WAL written over them then made 15-20 %
// fewer commits at 16 and 64 enqueuers (docs/benchmarks.md).
constexpr uint64_t kPiece = uint64_t{1} << 20;

// Whether the bytes of `file` in [offset, offset + n) are all zeros.
bool ReadsAsZeros(rocksdb::FSRandomAccessFile* file, uint64_t offset,
                  size_t n) {
  std::string buffer(n, '\1');
  rocksdb::Slice read;
  if (!file->Read(offset, n, rocksdb::IOOptions(), &read, buffer.data(),
                  nullptr)
           .ok() ||
      read.size() != n) {
    return false;
  }
  return std::all_of(read.data(), read.data() + n,
                     [](char c) { return c == 0; });
}

}  // namespace

WalSpareFileSystem::WalSpareFileSystem(
    std::shared_ptr<rocksdb::FileSystem> target, std::string dir,
    uint64_t spare_bytes)
    : FileSystemWrapper(std::move(target)),
      dir_(std::move(dir)),
      spare_path_(dir_ + "/" + kSpareName),
      partial_path_(dir_ + "/" + kPartialName),
      spare_bytes_(spare_bytes) {
  rocksdb::IOOptions io;
  uint64_t size = 0;
  if (FileSystemWrapper::GetFileSize(spare_path_, io, &size, nullptr).ok()) {
    // Of another size: another size was configured when it was written.
    // Not zeros where a spare begins and ends: not one we wrote (each piece
    // is synced before the rename, so a crash cannot leave a spare
    // half-written), and its bytes would sit past the WAL's last record.
    if (size == spare_bytes_ && HoldsZerosAtBothEnds()) {
      ready_ = true;
    } else {
      FileSystemWrapper::DeleteFile(spare_path_, io, nullptr)
          .PermitUncheckedError();
    }
  }
  // Left by a process that stopped while writing it.
  if (FileSystemWrapper::FileExists(partial_path_, io, nullptr).ok()) {
    FileSystemWrapper::DeleteFile(partial_path_, io, nullptr)
        .PermitUncheckedError();
  }
}

bool WalSpareFileSystem::HoldsZerosAtBothEnds() {
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  if (!FileSystemWrapper::NewRandomAccessFile(
           spare_path_, rocksdb::FileOptions(), &file, nullptr)
           .ok()) {
    return false;
  }
  const size_t head = static_cast<size_t>(std::min(kPiece, spare_bytes_));
  return ReadsAsZeros(file.get(), 0, head) &&
         ReadsAsZeros(file.get(), spare_bytes_ - head, head);
}

WalSpareFileSystem::~WalSpareFileSystem() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (preparer_.joinable()) preparer_.join();
}

rocksdb::IOStatus WalSpareFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) {
  if (!IsWalFileOf(dir_, fname)) {
    return FileSystemWrapper::NewWritableFile(fname, options, r, dbg);
  }
  bool from_spare = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(from_spare, ready_);
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s;
  if (from_spare) {
    s = FileSystemWrapper::ReuseWritableFile(fname, spare_path_, options, &file,
                                             dbg);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      ++taken_;
    } else {
      // Not there after all, or not renamable: a plain WAL will do, and the
      // next one triggers a new spare.
      FileSystemWrapper::DeleteFile(spare_path_, rocksdb::IOOptions(), dbg)
          .PermitUncheckedError();
      from_spare = false;
    }
  }
  if (!from_spare) {
    s = FileSystemWrapper::NewWritableFile(fname, options, &file, dbg);
  }
  if (!s.ok()) return s;
  *r = std::make_unique<CountedWal>(std::move(file), this, from_spare);
  return s;
}

bool WalSpareFileSystem::spare_ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

uint64_t WalSpareFileSystem::wals_from_spares() const {
  std::lock_guard<std::mutex> lock(mu_);
  return taken_;
}

void WalSpareFileSystem::WantSpare() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_ || wanted_ || preparing_ || stopping_) return;
    wanted_ = true;
    if (!preparer_.joinable()) {
      preparer_ = std::thread([this] { Prepare(); });
    }
  }
  cv_.notify_all();
}

bool WalSpareFileSystem::WaitForSpare() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t failures = failures_;
  cv_.wait(lock, [&] {
    return ready_ || stopping_ || failures_ != failures ||
           (!wanted_ && !preparing_);
  });
  return ready_;
}

rocksdb::IOStatus WalSpareFileSystem::PrepareNow() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !preparing_; });
  if (ready_) return rocksdb::IOStatus::OK();
  preparing_ = true;
  lock.unlock();
  const rocksdb::IOStatus s = WriteSpare();
  lock.lock();
  preparing_ = false;
  if (s.ok()) ready_ = true;
  cv_.notify_all();
  return s;
}

void WalSpareFileSystem::Prepare() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || (wanted_ && !preparing_); });
    if (stopping_) return;
    wanted_ = false;
    if (ready_) continue;  // PrepareNow wrote one meanwhile
    preparing_ = true;
    lock.unlock();
    const rocksdb::IOStatus s = WriteSpare();
    lock.lock();
    preparing_ = false;
    if (s.ok()) {
      ready_ = true;
    } else {
      ++failures_;  // a full disk, a failed sync: the next WAL tries again
    }
    cv_.notify_all();
  }
}

rocksdb::IOStatus WalSpareFileSystem::WriteSpare() {
  static const std::string zeros(kPiece, '\0');
  rocksdb::IOOptions io;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = FileSystemWrapper::NewWritableFile(
      partial_path_, rocksdb::FileOptions(), &file, nullptr);
  uint64_t written = 0;
  while (s.ok() && written < spare_bytes_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) s = rocksdb::IOStatus::Aborted("the store is closing");
    }
    const uint64_t piece_end = std::min(spare_bytes_, written + kPiece);
    while (s.ok() && written < piece_end) {
      const size_t n = static_cast<size_t>(
          std::min<uint64_t>(zeros.size(), piece_end - written));
      s = file->Append(rocksdb::Slice(zeros.data(), n), io, nullptr);
      written += n;
    }
    if (s.ok()) s = file->Sync(io, nullptr);
  }
  if (file != nullptr) {
    rocksdb::IOStatus closed = file->Close(io, nullptr);
    if (s.ok()) s = closed;
  }
  if (s.ok()) {
    s = FileSystemWrapper::RenameFile(partial_path_, spare_path_, io, nullptr);
  }
  if (!s.ok()) {
    FileSystemWrapper::DeleteFile(partial_path_, io, nullptr)
        .PermitUncheckedError();
  }
  return s;
}

}  // namespace cde
