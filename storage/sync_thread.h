// SyncThread: a sync run on a thread of its own when asked, so that the
// thread asking goes on meanwhile (RocksKv: a group's memtable inserts
// beside its WAL's fdatasync, wal_progress.h). One sync at a time, asked
// for and waited on by one thread at a time (RocksKv holds its sync lock).
#ifndef CDE_STORAGE_SYNC_THREAD_H_
#define CDE_STORAGE_SYNC_THREAD_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "storage/status.h"

namespace cde {

class SyncThread {
 public:
  explicit SyncThread(std::function<Status()> sync);
  ~SyncThread();  // lets a sync under way finish, then joins
  SyncThread(const SyncThread&) = delete;
  SyncThread& operator=(const SyncThread&) = delete;

  // Begins a sync unless one has begun since the last Wait. Quick: may be
  // called from inside a database write (WalFlushWatch).
  void Start();
  // Waits for the sync begun by Start and returns its status; OK at once
  // when none was begun. Sleeps until shortly before the sync is due to
  // end, then watches for its end.
  Status Wait();

 private:
  using Clock = std::chrono::steady_clock;

  void Run();

  const std::function<Status()> sync_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;  // Start called since the last Wait
  bool done_ = false;       // the requested sync has ended, with status_
  bool stopping_ = false;
  bool running_ = false;  // a sync is under way, since started_at_
  Clock::time_point started_at_;
  double sync_ns_ = -1;             // a moving average of the syncs' times
  std::atomic<bool> ended_{false};  // done_, for a waiter watching unlocked
  Status status_;
  std::thread thread_;
};

}  // namespace cde

#endif  // CDE_STORAGE_SYNC_THREAD_H_
