// PowerCutFs: a rocksdb::FileSystemWrapper that knows, for every file the
// store writes, how many of its bytes an fsync or fdatasync has covered and
// whether an fsync of its directory has covered its name, and can write the
// image a power cut would leave: each such file cut to what was synced, and
// a file whose name no directory fsync covered gone (or, renamed over
// another, that other as it was). A process kill loses nothing the page
// cache holds, so only this shows a commit acknowledged before its sync (or
// a sync that did not cover what it was said to, or a new WAL whose name
// was not yet durable).
//
// Freeze() stops every write, sync, rename and delete at its start and waits
// for those under way, so that the image is of one moment; Thaw() lets them
// go on.
#ifndef CDE_TESTS_STORAGE_POWER_CUT_FS_H_
#define CDE_TESTS_STORAGE_POWER_CUT_FS_H_

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace cde::test {

class PowerCutFs : public rocksdb::FileSystemWrapper {
 public:
  PowerCutFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "PowerCutFs"; }

  // Every sync then takes at least this long, as on a slower disk (the
  // sync is made, then the rest waited out).
  void SetSyncLatency(std::chrono::microseconds latency) {
    std::lock_guard lock(mu_);
    sync_latency_ = latency;
  }

  // The WALs (*.log) created so far.
  uint64_t WalsCreated() {
    std::lock_guard lock(mu_);
    return wals_created_;
  }

  void Freeze() {
    std::unique_lock lock(mu_);
    frozen_ = true;
    idle_.wait(lock, [this] { return busy_ == 0; });
  }
  void Thaw() {
    std::lock_guard lock(mu_);
    frozen_ = false;
    thawed_.notify_all();
  }

  // Copies directory `from` to `to` (which must not exist) as a power cut
  // would leave it: every file this file system wrote cut to its synced
  // bytes, or, if no directory fsync covered its name, left out (or what
  // it was renamed over, as that was); the others whole. REQUIRES: frozen.
  void WriteCrashImage(const std::string& from, const std::string& to) {
    namespace fs = std::filesystem;
    std::lock_guard lock(mu_);
    fs::create_directories(to);
    for (const auto& entry : fs::directory_iterator(from)) {
      if (!entry.is_regular_file()) continue;
      const std::string name = entry.path().string();
      const std::string target = (fs::path(to) / entry.path().filename());
      auto it = files_.find(name);
      if (it == files_.end()) {
        fs::copy_file(entry.path(), target);
        continue;
      }
      if (!it->second->name_synced) {
        // The name is not on the disk: the file it replaced is, if any.
        auto replaced = replaced_.find(name);
        if (replaced != replaced_.end()) {
          std::ofstream(target, std::ios::binary) << replaced->second;
        }
        continue;
      }
      std::ofstream(target, std::ios::binary) << SyncedBytes(name);
    }
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    const bool existed = std::filesystem::exists(f);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->NewWritableFile(f, o, &file, dbg);
    if (!s.ok()) return s;
    *r = std::make_unique<File>(std::move(file), this, Track(f, 0, existed));
    if (f.ends_with(".log")) {
      std::lock_guard lock(mu_);
      ++wals_created_;
    }
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    const bool existed = std::filesystem::exists(f);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->ReopenWritableFile(f, o, &file, dbg);
    if (!s.ok()) return s;
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(f, ec);
    *r = std::make_unique<File>(std::move(file), this,
                                Track(f, ec ? 0 : size, existed));
    return s;
  }
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSDirectory> dir;
    auto s = target()->NewDirectory(name, o, &dir, dbg);
    if (s.ok()) *r = std::make_unique<Dir>(std::move(dir), this, name);
    return s;
  }
  // The new name is durable once its directory is synced; until then the
  // disk holds what `to` was before (as much of it as was durable), if
  // anything.
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
    Op op(this);
    std::lock_guard lock(mu_);
    auto was = files_.find(to);
    const bool durable_before = was == files_.end() || was->second->name_synced;
    std::optional<std::string> before;
    if (durable_before && std::filesystem::exists(to)) before = SyncedBytes(to);
    auto s = target()->RenameFile(from, to, o, dbg);
    if (!s.ok()) return s;
    auto it = files_.find(from);
    std::shared_ptr<State> state;
    if (it != files_.end()) {
      state = it->second;
      files_.erase(it);
    } else {
      std::error_code ec;
      const uint64_t size = std::filesystem::file_size(to, ec);
      state = std::make_shared<State>();
      state->appended = state->synced = ec ? 0 : size;
    }
    state->name_synced = false;
    state->named_at = ++names_;
    files_[to] = state;
    if (before) {
      replaced_[to] = std::move(*before);
    } else if (durable_before) {
      replaced_.erase(to);
    }
    return s;
  }
  rocksdb::IOStatus DeleteFile(const std::string& f,
                               const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
    Op op(this);
    auto s = target()->DeleteFile(f, o, dbg);
    if (s.ok()) {
      std::lock_guard lock(mu_);
      files_.erase(f);
      replaced_.erase(f);
    }
    return s;
  }

 private:
  struct State {  // GUARDED_BY(PowerCutFs::mu_)
    uint64_t appended = 0;
    uint64_t synced = 0;
    bool name_synced = false;  // a directory fsync covered its name
    uint64_t named_at = 0;     // names_ when it was created or renamed
  };

  // Holds the file system unfrozen for one operation.
  class Op {
   public:
    explicit Op(PowerCutFs* fs) : fs_(fs) {
      std::unique_lock lock(fs_->mu_);
      fs_->thawed_.wait(lock, [this] { return !fs_->frozen_; });
      ++fs_->busy_;
    }
    ~Op() {
      std::lock_guard lock(fs_->mu_);
      if (--fs_->busy_ == 0) fs_->idle_.notify_all();
    }
    Op(const Op&) = delete;
    Op& operator=(const Op&) = delete;

   private:
    PowerCutFs* fs_;
  };

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, PowerCutFs* fs,
         std::shared_ptr<State> state)
        : FSWritableFileOwnerWrapper(std::move(f)),
          fs_(fs),
          state_(std::move(state)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      Op op(fs_);
      auto s = FSWritableFileOwnerWrapper::Append(data, o, dbg);
      if (s.ok()) Grow(data.size());
      return s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      Op op(fs_);
      auto s = FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
      if (s.ok()) Grow(data.size());
      return s;
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
      return Synced([&] { return FSWritableFileOwnerWrapper::Sync(o, dbg); });
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      return Synced([&] { return FSWritableFileOwnerWrapper::Fsync(o, dbg); });
    }
    rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes,
                                const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* dbg) override {
      // Starts writeback; promises nothing about durability.
      Op op(fs_);
      return FSWritableFileOwnerWrapper::RangeSync(offset, nbytes, o, dbg);
    }

   private:
    void Grow(uint64_t n) {
      std::lock_guard lock(fs_->mu_);
      state_->appended += n;
    }
    // A sync covers what was appended before it began.
    template <typename SyncFn>
    rocksdb::IOStatus Synced(const SyncFn& sync) {
      Op op(fs_);
      uint64_t covers;
      std::chrono::microseconds latency;
      {
        std::lock_guard lock(fs_->mu_);
        covers = state_->appended;
        latency = fs_->sync_latency_;
      }
      const auto deadline = std::chrono::steady_clock::now() + latency;
      auto s = sync();
      std::this_thread::sleep_until(deadline);
      if (s.ok()) {
        std::lock_guard lock(fs_->mu_);
        state_->synced = std::max(state_->synced, covers);
      }
      return s;
    }

    PowerCutFs* fs_;
    std::shared_ptr<State> state_;
  };

  // The directory a store's files are in, counting its fsyncs: each covers
  // the names of the files created or renamed in it before it began.
  class Dir : public rocksdb::FSDirectoryWrapper {
   public:
    Dir(std::unique_ptr<rocksdb::FSDirectory> dir, PowerCutFs* fs,
        std::string path)
        : FSDirectoryWrapper(std::move(dir)), fs_(fs), path_(Normal(path)) {}

    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      return Synced([&] { return FSDirectoryWrapper::Fsync(o, dbg); });
    }
    rocksdb::IOStatus FsyncWithDirOptions(
        const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg,
        const rocksdb::DirFsyncOptions& options) override {
      return Synced([&] {
        return FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, options);
      });
    }

   private:
    template <typename SyncFn>
    rocksdb::IOStatus Synced(const SyncFn& sync) {
      Op op(fs_);
      uint64_t covers;
      {
        std::lock_guard lock(fs_->mu_);
        covers = fs_->names_;
      }
      auto s = sync();
      if (!s.ok()) return s;
      std::lock_guard lock(fs_->mu_);
      for (auto& [name, state] : fs_->files_) {
        if (state->name_synced || state->named_at > covers ||
            Normal(std::filesystem::path(name).parent_path()) != path_) {
          continue;
        }
        state->name_synced = true;
        fs_->replaced_.erase(name);
      }
      return s;
    }

    PowerCutFs* fs_;
    const std::string path_;
  };

  static std::string Normal(const std::filesystem::path& dir) {
    std::string s = dir.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  }

  // What the disk holds of `name` (synced bytes if tracked, else all).
  // REQUIRES: mu_ held.
  std::string SyncedBytes(const std::string& name) {
    std::ifstream in(name, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    auto it = files_.find(name);
    if (it != files_.end() && bytes.size() > it->second->synced) {
      bytes.resize(it->second->synced);
    }
    return bytes;
  }

  // A file opened for writing: a new name, unless it was there already
  // with a durable name (reopened, or truncated in place).
  std::shared_ptr<State> Track(const std::string& name, uint64_t size,
                               bool existed) {
    auto state = std::make_shared<State>();
    state->appended = size;
    state->synced = size;  // what a reopened file held is on the disk
    std::lock_guard lock(mu_);
    auto was = files_.find(name);
    state->name_synced =
        existed && (was == files_.end() || was->second->name_synced);
    state->named_at = state->name_synced ? 0 : ++names_;
    files_[name] = state;
    return state;
  }

  std::mutex mu_;
  std::condition_variable thawed_, idle_;
  bool frozen_ = false;                        // GUARDED_BY(mu_)
  uint64_t wals_created_ = 0;                  // GUARDED_BY(mu_)
  std::chrono::microseconds sync_latency_{0};  // GUARDED_BY(mu_)
  int busy_ = 0;  // operations under way; GUARDED_BY(mu_)
  std::map<std::string, std::shared_ptr<State>> files_;  // GUARDED_BY(mu_)
  // Files created or renamed so far (State::named_at). GUARDED_BY(mu_)
  uint64_t names_ = 0;
  // For a name renamed over another file and not yet synced in its
  // directory: that file's durable bytes. GUARDED_BY(mu_)
  std::map<std::string, std::string> replaced_;
};

}  // namespace cde::test

#endif  // CDE_TESTS_STORAGE_POWER_CUT_FS_H_
