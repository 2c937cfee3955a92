#include "storage/wal_progress.h"

#include <utility>

#include "storage/wal_tail.h"

namespace cde {

namespace {

thread_local WalFlushWatch* installed_watch = nullptr;

void RaiseTo(std::atomic<uint64_t>* value, uint64_t at_least) {
  uint64_t seen = value->load(std::memory_order_relaxed);
  while (seen < at_least && !value->compare_exchange_weak(
                                seen, at_least, std::memory_order_release,
                                std::memory_order_relaxed)) {
  }
}

// A WAL keeping its WalFileProgress: appends count as handed over once the
// file has taken them; a sync covers what had been handed over when it
// began.
class ProgressWal final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  explicit ProgressWal(std::unique_ptr<rocksdb::FSWritableFile> file)
      : FSWritableFileOwnerWrapper(std::move(file)),
        progress_(std::make_shared<WalFileProgress>()) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Handed(data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Handed(data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s =
        target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) RaiseTo(&progress_->handed, offset + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s =
        target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) RaiseTo(&progress_->handed, offset + data.size());
    return s;
  }

  // RocksDB's WritableFileWriter calls this once it has appended all it
  // buffered: the end of a batch's WAL record when the writer flushes it.
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Flush(options, dbg);
    if (s.ok()) WalFlushWatch::Flushed(progress_);
    return s;
  }

  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    const uint64_t covered = progress_->handed.load(std::memory_order_acquire);
    rocksdb::IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) RaiseTo(&progress_->synced, covered);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    const uint64_t covered = progress_->handed.load(std::memory_order_acquire);
    rocksdb::IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) RaiseTo(&progress_->synced, covered);
    return s;
  }

 private:
  // Appends to one WAL come from one writer at a time (RocksDB's WAL
  // writer); readers of `handed` are the syncs.
  void Handed(size_t n) {
    progress_->handed.fetch_add(n, std::memory_order_release);
  }

  std::shared_ptr<WalFileProgress> progress_;
};

}  // namespace

WalProgressFileSystem::WalProgressFileSystem(
    std::shared_ptr<rocksdb::FileSystem> target, std::string dir)
    : FileSystemWrapper(std::move(target)), dir_(std::move(dir)) {}

rocksdb::IOStatus WalProgressFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      FileSystemWrapper::NewWritableFile(fname, options, r, dbg);
  if (s.ok() && IsWalFileOf(dir_, fname)) {
    *r = std::make_unique<ProgressWal>(std::move(*r));
  }
  return s;
}

rocksdb::IOStatus WalProgressFileSystem::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      FileSystemWrapper::ReuseWritableFile(fname, old_fname, options, r, dbg);
  if (s.ok() && IsWalFileOf(dir_, fname)) {
    *r = std::make_unique<ProgressWal>(std::move(*r));
  }
  return s;
}

WalFlushWatch::WalFlushWatch(std::function<void()> on_first_flush)
    : on_first_flush_(std::move(on_first_flush)) {}

WalFlushWatch::Installed::Installed(WalFlushWatch* watch)
    : previous_(installed_watch) {
  installed_watch = watch;
}

WalFlushWatch::Installed::~Installed() { installed_watch = previous_; }

bool WalFlushWatch::CoveredBySync() const {
  return file_ != nullptr &&
         file_->synced.load(std::memory_order_acquire) >= end_;
}

void WalFlushWatch::Flushed(const std::shared_ptr<WalFileProgress>& file) {
  WalFlushWatch* watch = installed_watch;
  if (watch == nullptr) return;
  const bool first = watch->file_ == nullptr;
  watch->file_ = file;
  watch->end_ = file->handed.load(std::memory_order_acquire);
  if (first && watch->on_first_flush_) watch->on_first_flush_();
}

}  // namespace cde
