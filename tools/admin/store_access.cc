#include "tools/admin/store_access.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tools/admin/output.h"

namespace cde::admin {
namespace {

std::string LockPath(const std::string& data_dir) { return data_dir + "/LOCK"; }

struct flock WholeFileWriteLock() {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // the whole file, as RocksDB locks it
  return fl;
}

}  // namespace

std::optional<pid_t> LockHolder(const std::string& data_dir) {
  const int fd = open(LockPath(data_dir).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock fl = WholeFileWriteLock();
  const int rc = fcntl(fd, F_GETLK, &fl);
  close(fd);
  if (rc != 0 || fl.l_type == F_UNLCK) return std::nullopt;
  return fl.l_pid;
}

std::string StoreAccess::ModeName() const {
  return mode == OpenMode::kSecondary ? "secondary" : "read_only";
}

void StoreAccess::CatchUp() { Check(store->CatchUp()); }

StoreAccess OpenForRead(const std::string& data_dir, bool follow) {
  StoreAccess access;
  access.server_pid = LockHolder(data_dir);
  access.mode =
      access.server_pid || follow ? OpenMode::kSecondary : OpenMode::kReadOnly;
  auto opened = OpenRocksStore({.path = data_dir, .mode = access.mode});
  // A secondary opens every file the server's MANIFEST lists; one the server
  // deletes meanwhile (a compaction finishing) fails the open: try again.
  for (int retry = 0;
       retry < 3 && !opened.ok() && access.mode == OpenMode::kSecondary &&
       !opened.status().IsInvalidArgument() &&
       !opened.status().IsNotSupported();
       ++retry) {
    usleep(50'000);
    opened = OpenRocksStore({.path = data_dir, .mode = access.mode});
  }
  if (!opened.ok()) {
    const Status& s = opened.status();
    Check(s, s.IsInvalidArgument() || s.IsNotSupported() ? kExitUsage
                                                         : kExitFailed);
  }
  access.store = std::move(opened).value();
  if (access.mode == OpenMode::kSecondary) access.CatchUp();
  return access;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) close(fd_);  // closing the descriptor releases the lock
}

DataDirLock DataDirLock::Take(const std::string& data_dir) {
  DataDirLock lock;
  const std::string path = LockPath(data_dir);
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return lock;
    Fail(kExitFailed, "cannot open " + path + ": " + std::strerror(errno));
  }
  struct flock fl = WholeFileWriteLock();
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    const int err = errno;
    close(fd);
    if (err == EACCES || err == EAGAIN) {
      const auto holder = LockHolder(data_dir);
      std::string who = "a process";
      if (holder && *holder > 0)
        who += " (pid " + std::to_string(*holder) + ")";
      Fail(kExitLive, who + " holds the store at " + data_dir);
    }
    Fail(kExitFailed, "cannot lock " + path + ": " + std::strerror(err));
  }
  lock.fd_ = fd;
  return lock;
}

}  // namespace cde::admin
