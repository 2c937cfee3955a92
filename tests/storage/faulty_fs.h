// FaultyFs: a rocksdb::FileSystemWrapper that fails syncs or reports a full
// disk on demand, in the manner of LevelDB's FaultInjectionTestEnv.
#ifndef CDE_TESTS_STORAGE_FAULTY_FS_H_
#define CDE_TESTS_STORAGE_FAULTY_FS_H_

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>

namespace cde::test {

struct FaultSwitches {
  std::atomic<bool> fail_sync{false};  // Sync/Fsync return IOError
  std::atomic<bool> no_space{false};   // Append returns NoSpace
  std::atomic<int> syncs{0};           // successful syncs so far
};

class FaultyWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyWritableFile(std::unique_ptr<rocksdb::FSWritableFile> f,
                     FaultSwitches* sw)
      : FSWritableFileOwnerWrapper(std::move(f)), sw_(sw) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (sw_->no_space) return rocksdb::IOStatus::NoSpace("injected: disk full");
    return FSWritableFileOwnerWrapper::Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    if (sw_->no_space) return rocksdb::IOStatus::NoSpace("injected: disk full");
    return FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o,
                         rocksdb::IODebugContext* dbg) override {
    if (sw_->fail_sync) return rocksdb::IOStatus::IOError("injected: sync");
    ++sw_->syncs;
    return FSWritableFileOwnerWrapper::Sync(o, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                          rocksdb::IODebugContext* dbg) override {
    if (sw_->fail_sync) return rocksdb::IOStatus::IOError("injected: fsync");
    ++sw_->syncs;
    return FSWritableFileOwnerWrapper::Fsync(o, dbg);
  }

 private:
  FaultSwitches* sw_;
};

class FaultyFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultyFs(FaultSwitches* sw)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), sw_(sw) {}
  const char* Name() const override { return "FaultyFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->NewWritableFile(f, o, &file, dbg);
    if (s.ok()) *r = std::make_unique<FaultyWritableFile>(std::move(file), sw_);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->ReopenWritableFile(f, o, &file, dbg);
    if (s.ok()) *r = std::make_unique<FaultyWritableFile>(std::move(file), sw_);
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& f, const std::string& old,
      const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->ReuseWritableFile(f, old, o, &file, dbg);
    if (s.ok()) *r = std::make_unique<FaultyWritableFile>(std::move(file), sw_);
    return s;
  }

 private:
  FaultSwitches* sw_;
};

// An Env whose file system is a FaultyFs driven by `sw`.
inline std::unique_ptr<rocksdb::Env> NewFaultyEnv(FaultSwitches* sw) {
  return rocksdb::NewCompositeEnv(std::make_shared<FaultyFs>(sw));
}

}  // namespace cde::test

#endif  // CDE_TESTS_STORAGE_FAULTY_FS_H_
