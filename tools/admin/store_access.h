// How cde-admin opens a data dir.
//
// The server holds the RocksDB LOCK file of its data dir (an fcntl write
// lock) for as long as it runs. cde-admin never takes that lock for reads;
// it asks the kernel who holds it (F_GETLK, which changes nothing) and then:
//   - a process holds it (a live server): kSecondary, caught up once at open
//     and again on every poll of `sagas log --follow`. A kReadOnly open of a
//     live primary's files is allowed by RocksDB but sees a frozen view and
//     may fail when the primary deletes files it has not opened yet.
//   - nobody holds it: kReadOnly, the cheapest consistent view, which writes
//     nothing into the data dir.
// `--follow` always opens kSecondary, so it also picks up a server that
// starts while it runs.
//
// backup is the exception: it takes the lock itself (TryLockDataDir) for its
// duration, so that no server can start while the checkpoint is taken.
#ifndef CDE_TOOLS_ADMIN_STORE_ACCESS_H_
#define CDE_TOOLS_ADMIN_STORE_ACCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "storage/store.h"

namespace cde::admin {

// The pid of the process holding the data dir's RocksDB LOCK (0 when the
// kernel does not say), or nullopt when nobody holds it or there is no LOCK.
std::optional<pid_t> LockHolder(const std::string& data_dir);

struct StoreAccess {
  std::unique_ptr<Store> store;
  OpenMode mode = OpenMode::kReadOnly;
  std::optional<pid_t> server_pid;  // who held the lock at open

  // "read_only" or "secondary".
  std::string ModeName() const;
  // A secondary reads the server's latest writes; otherwise nothing.
  void CatchUp();
};

// Opens `data_dir` for reading (see above). A data dir that is not a store,
// or whose format is newer than this build's, fails with kExitUsage.
StoreAccess OpenForRead(const std::string& data_dir, bool follow = false);

// Holds the data dir's RocksDB LOCK while it lives, so no server can start.
class DataDirLock {
 public:
  DataDirLock() = default;
  ~DataDirLock();
  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&&) = delete;

  // Takes the lock; fails with kExitLive naming the holder if a process
  // holds it. A data dir without a LOCK file (never opened for writing,
  // e.g. a backup) gives an empty lock: nothing to take.
  static DataDirLock Take(const std::string& data_dir);

 private:
  int fd_ = -1;
};

}  // namespace cde::admin

#endif  // CDE_TOOLS_ADMIN_STORE_ACCESS_H_
