#include "storage/wal_progress.h"

#include <filesystem>
#include <system_error>
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

// A sync (of a WAL or of the WALs' directory) covers what `count` held when
// it began: once it succeeds, `covered` rises to that, and the watch on this
// thread hears of it (WalFlushWatch::Synced).
template <typename Sync>
rocksdb::IOStatus SyncCovering(const std::atomic<uint64_t>& count,
                               std::atomic<uint64_t>* covered,
                               const WalDirProgress& dir, Sync sync) {
  const uint64_t before = count.load(std::memory_order_acquire);
  rocksdb::IOStatus s = sync();
  if (s.ok()) {
    RaiseTo(covered, before);
    WalFlushWatch::Synced(dir);
  }
  return s;
}

// A WAL keeping its WalFileProgress: appends count as handed over once the
// file has taken them; a sync covers what had been handed over when it
// began.
class ProgressWal final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  ProgressWal(std::unique_ptr<rocksdb::FSWritableFile> file,
              std::shared_ptr<const WalDirProgress> dir)
      : FSWritableFileOwnerWrapper(std::move(file)),
        progress_(std::make_shared<WalFileProgress>()),
        dir_(std::move(dir)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    return Handing(End(data),
                   [&] { return target()->Append(data, options, dbg); });
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    return Handing(End(data),
                   [&] { return target()->Append(data, options, info, dbg); });
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    return Handing(offset + data.size(), [&] {
      return target()->PositionedAppend(data, offset, options, dbg);
    });
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    return Handing(offset + data.size(), [&] {
      return target()->PositionedAppend(data, offset, options, info, dbg);
    });
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
    return Covering([&] { return target()->Sync(options, dbg); });
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return Covering([&] { return target()->Fsync(options, dbg); });
  }

 private:
  // The file's end once `data` is appended. Appends to one WAL come from
  // one writer at a time (RocksDB's WAL writer); readers of `handed` are
  // the syncs.
  uint64_t End(const rocksdb::Slice& data) const {
    return progress_->handed.load(std::memory_order_relaxed) + data.size();
  }
  // What `write` appends counts as handed over, up to `end`, once the file
  // has taken it.
  template <typename Write>
  rocksdb::IOStatus Handing(uint64_t end, Write write) {
    rocksdb::IOStatus s = write();
    if (s.ok()) RaiseTo(&progress_->handed, end);
    return s;
  }
  // A sync covers what had been handed over when it began.
  template <typename SyncFile>
  rocksdb::IOStatus Covering(SyncFile sync) {
    return SyncCovering(progress_->handed, &progress_->synced, *dir_, sync);
  }

  std::shared_ptr<WalFileProgress> progress_;
  const std::shared_ptr<const WalDirProgress> dir_;
};

// The WALs' directory, counting its fsyncs in WalDirProgress.
class ProgressDir final : public rocksdb::FSDirectoryWrapper {
 public:
  ProgressDir(std::unique_ptr<rocksdb::FSDirectory> dir,
              std::shared_ptr<WalDirProgress> progress)
      : FSDirectoryWrapper(std::move(dir)), progress_(std::move(progress)) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return Covering([&] { return FSDirectoryWrapper::Fsync(options, dbg); });
  }
  rocksdb::IOStatus FsyncWithDirOptions(
      const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg,
      const rocksdb::DirFsyncOptions& dir_options) override {
    return Covering([&] {
      return FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
    });
  }

 private:
  // An fsync covers the WALs created before it began.
  template <typename SyncDir>
  rocksdb::IOStatus Covering(SyncDir sync) {
    return SyncCovering(progress_->created, &progress_->synced, *progress_,
                        sync);
  }

  const std::shared_ptr<WalDirProgress> progress_;
};

}  // namespace

WalProgressFileSystem::WalProgressFileSystem(
    std::shared_ptr<rocksdb::FileSystem> target, std::string dir)
    : FileSystemWrapper(std::move(target)),
      dir_(std::move(dir)),
      dir_progress_(std::make_shared<WalDirProgress>()) {}

std::unique_ptr<rocksdb::FSWritableFile> WalProgressFileSystem::Created(
    std::unique_ptr<rocksdb::FSWritableFile> file) {
  dir_progress_->created.fetch_add(1, std::memory_order_acq_rel);
  return std::make_unique<ProgressWal>(std::move(file), dir_progress_);
}

rocksdb::IOStatus WalProgressFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      FileSystemWrapper::NewWritableFile(fname, options, r, dbg);
  if (s.ok() && IsWalFileOf(dir_, fname)) *r = Created(std::move(*r));
  return s;
}

rocksdb::IOStatus WalProgressFileSystem::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      FileSystemWrapper::ReuseWritableFile(fname, old_fname, options, r, dbg);
  if (s.ok() && IsWalFileOf(dir_, fname)) *r = Created(std::move(*r));
  return s;
}

rocksdb::IOStatus WalProgressFileSystem::NewDirectory(
    const std::string& name, const rocksdb::IOOptions& options,
    std::unique_ptr<rocksdb::FSDirectory>* result,
    rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      FileSystemWrapper::NewDirectory(name, options, result, dbg);
  std::error_code ec;
  if (s.ok() && std::filesystem::equivalent(name, dir_, ec)) {
    *result = std::make_unique<ProgressDir>(std::move(*result), dir_progress_);
  }
  return s;
}

WalFlushWatch::WalFlushWatch(std::function<void()> on_first_flush,
                             std::function<void()> on_durable)
    : on_first_flush_(std::move(on_first_flush)),
      on_durable_(std::move(on_durable)) {}

WalFlushWatch::Installed::Installed(WalFlushWatch* watch)
    : previous_(installed_watch) {
  installed_watch = watch;
}

WalFlushWatch::Installed::~Installed() { installed_watch = previous_; }

bool WalFlushWatch::CoveredBySync() const {
  if (flushed_count_ == 0 || overflowed_) return false;
  for (size_t i = 0; i < flushed_count_; ++i) {
    const Flush& f = flushed_[i];
    if (f.file->synced.load(std::memory_order_acquire) < f.end) return false;
  }
  return true;
}

void WalFlushWatch::Saw(const std::shared_ptr<WalFileProgress>& file) {
  const uint64_t end = file->handed.load(std::memory_order_acquire);
  for (size_t i = 0; i < flushed_count_; ++i) {
    if (flushed_[i].file == file) {
      flushed_[i].end = end;
      return;
    }
  }
  if (flushed_count_ == flushed_.size()) {
    overflowed_ = true;
    return;
  }
  flushed_[flushed_count_++] = {file, end};
}

void WalFlushWatch::Flushed(const std::shared_ptr<WalFileProgress>& file) {
  WalFlushWatch* watch = installed_watch;
  if (watch == nullptr) return;
  const bool first = !watch->saw_flush();
  watch->Saw(file);
  if (first && watch->on_first_flush_) watch->on_first_flush_();
}

void WalFlushWatch::Synced(const WalDirProgress& dir) {
  WalFlushWatch* watch = installed_watch;
  if (watch == nullptr || !watch->on_durable_ || !watch->CoveredBySync() ||
      !dir.AllSynced()) {
    return;
  }
  std::function<void()> on_durable = std::move(watch->on_durable_);
  watch->on_durable_ = nullptr;
  on_durable();
}

}  // namespace cde
