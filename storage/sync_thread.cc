#include "storage/sync_thread.h"

#include <utility>

namespace cde {

SyncThread::SyncThread(std::function<Status()> sync)
    : sync_(std::move(sync)), thread_([this] { Run(); }) {}

SyncThread::~SyncThread() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SyncThread::Start() {
  {
    std::lock_guard lock(mu_);
    if (requested_) return;
    requested_ = true;
    done_ = false;
  }
  cv_.notify_all();
}

Status SyncThread::Wait() {
  std::unique_lock lock(mu_);
  if (!requested_) return Status::OK();
  cv_.wait(lock, [this] { return done_; });
  requested_ = false;
  done_ = false;
  return std::move(status_);
}

void SyncThread::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    // A sync asked for before a stop still runs: its waiter is owed it.
    cv_.wait(lock, [this] { return (requested_ && !done_) || stopping_; });
    if (!(requested_ && !done_)) return;
    lock.unlock();
    Status status = sync_();
    lock.lock();
    status_ = std::move(status);
    done_ = true;
    cv_.notify_all();
  }
}

}  // namespace cde
