#include "storage/commit_writer.h"

#include <time.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace {

// Weight of a new sample in the moving averages: a few groups' worth of
// memory, so that a change of load is followed within milliseconds.
constexpr double kSampleWeight = 1.0 / 8;

// This thread's CPU time: what a write spent not waiting for the disk.
double ThreadCpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

double Average(double average, double sample) {
  return average < 0 ? sample : average + kSampleWeight * (sample - average);
}

}  // namespace

namespace cde {

CommitWriter::CommitWriter(Store* store, CommitWriterOptions options)
    : store_(store), options_(std::move(options)) {
  if (options_.pipeline && options_.sync) {
    thread_ = std::thread([this] { RunPipelined(); });
    second_thread_ = std::thread([this] { RunPipelined(); });
  } else {
    thread_ = std::thread([this] { Run(); });
  }
}

CommitWriter::~CommitWriter() { Stop(); }

void CommitWriter::Enqueue(Transition transition, Done done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(transition), std::move(done)});
      ++stats_.queued;
      if (sample_open_ && ++sample_arrivals_ == sample_released_) {
        CloseReturnSample(Clock::now());
      }
      // Only the writer waits on work_, and it rechecks the queue under mu_.
      if (queue_.size() == 1 || queue_.size() == gather_target_) {
        work_.notify_one();
      }
      return;
    }
  }
  done(Status::ShutdownInProgress("commit writer is stopped"));
}

void CommitWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (second_thread_.joinable()) second_thread_.join();
}

CommitWriterStats CommitWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void CommitWriter::OpenReturnSample(size_t released, Clock::time_point now) {
  if (sample_open_) CloseReturnSample(now);
  sample_open_ = true;
  sample_released_ = released;
  sample_arrivals_ = 0;
  sample_start_ = now;
}

// How long the released took to come back (all of them; or, if they are not
// all back by the next release, those that were: the ones that do not come
// back at all, like a finished saga's, make waiting look as costly as it
// would be). Averaged as a time and a count, so that a group of 1 weighs
// as little in the rate of return as it does in the group sizes.
void CommitWriter::CloseReturnSample(Clock::time_point now) {
  sample_open_ = false;
  const double ns =
      std::chrono::duration<double, std::nano>(now - sample_start_).count();
  return_ns_ = Average(return_ns_, ns);
  returned_ = Average(returned_, static_cast<double>(sample_arrivals_));
}

// Waiting for all `expected` costs their return time and saves a sync: a
// group of N in one write instead of two of N / 2 in two.
bool CommitWriter::WorthGathering(size_t expected) const {
  return options_.gather_returning && returned_ > 0 &&
         return_ns_ / returned_ * static_cast<double>(expected) < disk_wait_ns_;
}

void CommitWriter::Run() {
  std::vector<Waiter> group;
  std::vector<const Transition*> batch;
  size_t expected = 0;  // the last group and what was queued behind it
  uint64_t writes = 0;
  for (;;) {
    size_t bytes = 0;
    bool gathered = false;
    {
      std::unique_lock lock(mu_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      if (queue_.size() < expected && WorthGathering(expected)) {
        gather_target_ = expected;
        ++stats_.gathered;
        gathered = true;
        const auto window = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double, std::nano>(write_ns_));
        work_.wait_until(lock, Clock::now() + window, [&] {
          return stopping_ || queue_.size() >= expected;
        });
        gather_target_ = 0;
      }
      bytes = TakeGroup(&group);
    }
    // The lock is released for the write: callers keep enqueuing, and their
    // transitions form the next group while this one syncs.
    batch.clear();
    for (const Waiter& w : group) batch.push_back(&w.transition);
    // The thread's CPU clock is a system call (about 1 us here): a write in
    // four is enough to follow the disk.
    const bool measure_cpu = ++writes % 4 == 1;
    const Clock::time_point write_start = Clock::now();
    const double cpu_start = measure_cpu ? ThreadCpuNs() : 0;
    const Status status = store_->Write(batch, options_.sync);
    const double cpu_ns = measure_cpu ? ThreadCpuNs() - cpu_start : 0;
    const Clock::time_point written = Clock::now();
    if (options_.on_group_written) {
      options_.on_group_written(group.size(), bytes, gathered);
    }
    {
      std::lock_guard lock(mu_);
      const double write_ns =
          std::chrono::duration<double, std::nano>(written - write_start)
              .count();
      write_ns_ = Average(write_ns_, write_ns);
      if (measure_cpu) {
        disk_wait_ns_ =
            Average(disk_wait_ns_, std::max(write_ns - cpu_ns, 0.0));
      }
      expected = queue_.size() + group.size();
      OpenReturnSample(group.size(), written);
    }
    for (Waiter& w : group) w.done(status);
    group.clear();
  }
}

size_t CommitWriter::TakeGroup(std::vector<Waiter>* group) {
  size_t bytes = 0;
  while (!queue_.empty()) {
    const size_t next = queue_.front().transition.ByteSize();
    if (!group->empty() && bytes + next > options_.max_batch_bytes) break;
    bytes += next;
    group->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  stats_.queued -= group->size();
  stats_.groups += 1;
  stats_.transitions += group->size();
  stats_.bytes += bytes;
  stats_.largest_group =
      std::max<uint64_t>(stats_.largest_group, group->size());
  return bytes;
}

// Two threads, two roles. The writer (who holds the write turn) writes each
// group as it is queued, unsynced; the syncer syncs everything written so
// far and completes it, again and again, until nothing written is left. A
// thread that writes a group while no thread is the syncer becomes the
// syncer and hands the write turn to the other: with one transition at a
// time nothing passes between threads, and under load one thread writes
// while the other waits for the disk.
void CommitWriter::RunPipelined() {
  std::vector<Waiter> group;
  std::vector<const Transition*> batch;
  for (;;) {
    std::unique_lock turn(write_turn_);
    for (;;) {  // write until this thread becomes the syncer
      size_t bytes = 0;
      {
        std::unique_lock lock(mu_);
        work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        // Stopping, and everything is written: every written group is the
        // syncer's, who syncs until none is left.
        if (queue_.empty()) return;
        bytes = TakeGroup(&group);
        being_written_ = group.size();
      }
      batch.clear();
      for (const Waiter& w : group) batch.push_back(&w.transition);
      const Status status = store_->WriteUnsynced(batch);
      if (options_.on_group_written) {
        options_.on_group_written(group.size(), bytes, /*gathered=*/false);
      }
      std::unique_lock lock(mu_);
      being_written_ = 0;
      sync_work_.notify_one();  // a gathering syncer counts what is written
      if (!status.ok()) {
        // The store refuses writes and syncs from now on: the groups written
        // before this one fail in their sync.
        lock.unlock();
        for (Waiter& w : group) w.done(status);
        group.clear();
        continue;
      }
      for (Waiter& w : group) written_.push_back(std::move(w));
      group.clear();
      if (!syncer_) {
        syncer_ = true;
        break;
      }
    }
    turn.unlock();
    std::vector<Waiter> syncing;
    size_t expected = 0;  // the last sync's waiters and what was behind them
    for (;;) {            // sync until nothing written is left
      {
        std::unique_lock lock(mu_);
        // As the group-commit writer does: the waiters the last sync
        // released come back; when all would be written sooner than a sync
        // takes, one sync for all of them beats two for halves.
        const auto pending = [this] {
          return written_.size() + being_written_ + queue_.size();
        };
        if (expected >= 2 && pending() < expected && WorthGathering(expected)) {
          ++stats_.gathered;
          const auto window = std::chrono::duration_cast<Clock::duration>(
              std::chrono::duration<double, std::nano>(disk_wait_ns_));
          sync_work_.wait_until(lock, Clock::now() + window, [&] {
            return stopping_ || written_.size() >= expected;
          });
        }
        if (written_.empty()) {
          syncer_ = false;
          break;
        }
        syncing.swap(written_);
      }
      // Covers every group written before it began.
      const Clock::time_point start = Clock::now();
      const Status status = store_->SyncWritten();
      const Clock::time_point synced = Clock::now();
      {
        std::lock_guard lock(mu_);
        disk_wait_ns_ = Average(
            disk_wait_ns_,
            std::chrono::duration<double, std::nano>(synced - start).count());
        expected =
            syncing.size() + written_.size() + being_written_ + queue_.size();
        OpenReturnSample(syncing.size(), synced);
      }
      for (Waiter& w : syncing) w.done(status);
      syncing.clear();
    }
  }
}

}  // namespace cde
