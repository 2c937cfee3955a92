#include "storage/sync_thread.h"

#include <algorithm>
#include <utility>

#include "storage/cpu_relax.h"

namespace cde {

namespace {

// How long before a sync is due to end its waiter starts watching for it.
constexpr auto kWatch = std::chrono::microseconds(50);

}  // namespace

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
  // Woken through the condition variable, this thread would go on tens of
  // microseconds after the sync has ended (a futex wake-up, longer on a
  // virtual machine): it sleeps until shortly before the sync is due to
  // end, by the syncs so far, and watches for the rest.
  if (!done_ && sync_ns_ > 0) {
    const Clock::time_point from = running_ ? started_at_ : Clock::now();
    const Clock::time_point due =
        from + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double, std::nano>(sync_ns_));
    cv_.wait_until(lock, due - kWatch, [this] { return done_; });
    if (!done_) {
      lock.unlock();
      const Clock::time_point give_up = std::max(due, Clock::now()) + kWatch;
      while (!ended_.load(std::memory_order_acquire) &&
             Clock::now() < give_up) {
        CpuRelax();
      }
      lock.lock();
    }
  }
  cv_.wait(lock, [this] { return done_; });
  requested_ = false;
  done_ = false;
  ended_.store(false, std::memory_order_relaxed);
  return std::move(status_);
}

void SyncThread::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    // A sync asked for before a stop still runs: its waiter is owed it.
    cv_.wait(lock, [this] { return (requested_ && !done_) || stopping_; });
    if (!(requested_ && !done_)) return;
    running_ = true;
    started_at_ = Clock::now();
    lock.unlock();
    Status status = sync_();
    const Clock::time_point ended = Clock::now();
    lock.lock();
    const double ns =
        std::chrono::duration<double, std::nano>(ended - started_at_).count();
    sync_ns_ = sync_ns_ < 0 ? ns : sync_ns_ + (ns - sync_ns_) / 8;
    running_ = false;
    status_ = std::move(status);
    done_ = true;
    ended_.store(true, std::memory_order_release);
    cv_.notify_all();
  }
}

}  // namespace cde
