#include "storage/commit_writer.h"

#include <time.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "storage/cpu_relax.h"

namespace {

// Weight of a new sample in the moving averages: a few groups' worth of
// memory, so that a change of load is followed within milliseconds.
constexpr double kSampleWeight = 1.0 / 8;

// While it gathers, the writer writes what has come back in batches of at
// least this many: a write costs microseconds whatever its size.
constexpr size_t kEarlyWriteBatch = 8;

// How long a gathering writer watches the queue without an arrival before
// it sleeps until woken (see SpinForQueued).
constexpr auto kSpinGap = std::chrono::microseconds(50);

// This thread's CPU time: what a write spent not waiting for the disk.
double ThreadCpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

uint64_t Nanos(std::chrono::steady_clock::duration d) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
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
      queued_.store(queue_.size(), std::memory_order_release);
      if (sample_open_) {
        ++sample_arrivals_;
        const bool first = sample_arrivals_ == 1;
        const bool last = sample_arrivals_ == sample_released_;
        const Clock::time_point now =
            first || last ? Clock::now() : Clock::time_point();
        if (first) {
          stats_.first_return_ns += Nanos(now - sample_start_);
          ++stats_.first_returns;
        }
        if (last) {
          stats_.all_return_ns += Nanos(now - sample_start_);
          ++stats_.all_returns;
          CloseReturnSample(now);
        }
      }
      // Only the writer waits on work_, and it rechecks the queue under mu_.
      if (queue_.size() == wake_at_) {
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
//
// The group-commit writer also writes what comes back while it waits
// (early writes), so the waiting saves the group's writing as well: without
// it, each half group is written before its sync; with it, that writing
// overlaps the returns. So it waits when the returns take less than the
// sync and the writing of all of them, which the early writes measure (none
// made yet: the sync alone is counted). The pipelined syncer overlaps
// writes either way.
bool CommitWriter::WorthGathering(size_t expected) const {
  if (!options_.gather_returning || returned_ <= 0) return false;
  const double n = static_cast<double>(expected);
  double saved = disk_wait_ns_;
  if (options_.sync && !options_.pipeline && write_cpu_ns_ > 0) {
    saved += write_cpu_ns_ * n;
  }
  return return_ns_ / returned_ * n < saved;
}

void CommitWriter::Run() {
  std::vector<Waiter> group;
  std::vector<const Transition*> batch;
  size_t expected = 0;  // the last group and what was queued behind it
  uint64_t writes = 0;
  for (;;) {
    size_t bytes = 0;
    bool gathered = false;
    size_t written_early = 0;  // of `group`, written unsynced while gathering
    Status status;
    {
      std::unique_lock lock(mu_);
      wake_at_ = 1;
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      wake_at_ = 0;
      if (queue_.empty()) return;  // stopping, and everything is written
      if (queue_.size() < expected && WorthGathering(expected)) {
        ++stats_.gathered;
        gathered = true;
        const Clock::time_point gather_start = Clock::now();
        status = GatherWritingEarly(lock, expected, &group, &bytes, &batch,
                                    &written_early);
        stats_.gather_ns += Nanos(Clock::now() - gather_start);
      }
      if (status.ok()) bytes += TakeGroup(&group, bytes);
      CountGroup(group.size(), bytes);
    }
    // The lock is released for the write: callers keep enqueuing, and their
    // transitions form the next group while this one syncs.
    batch.clear();
    for (size_t i = written_early; i < group.size(); ++i) {
      batch.push_back(&group[i].transition);
    }
    // The thread's CPU clock is a system call (about 1 us here): a write in
    // four is enough to follow the disk.
    const bool measure_cpu = ++writes % 4 == 1;
    const Clock::time_point write_start = Clock::now();
    const double cpu_start = measure_cpu ? ThreadCpuNs() : 0;
    // An early write that failed leaves nothing to write or time: the store
    // refuses everything from now on.
    const bool writing = status.ok();
    // A synced write may tell that its group is durable before it returns
    // (Store::WriteSynced): the callers go on while the store makes it
    // readable.
    bool released = false;
    Clock::time_point told;
    const std::function<void()> on_durable = [&] {
      told = Clock::now();
      Release(&group, Status::OK(), &expected);
      released = true;
    };
    if (writing && !batch.empty()) {
      // Synced, it also syncs the early writes before it (Store::Write).
      status = options_.sync ? store_->WriteSynced(batch, on_durable)
                             : store_->Write(batch, /*sync=*/false);
    } else if (writing) {
      status = store_->SyncWritten();
    }
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
      if (writing) {
        write_ns_ = Average(write_ns_, write_ns);
        stats_.write_ns += static_cast<uint64_t>(write_ns);
        stats_.tell_ns += Nanos((released ? told : written) - write_start);
      }
      if (measure_cpu && writing) {
        disk_wait_ns_ =
            Average(disk_wait_ns_, std::max(write_ns - cpu_ns, 0.0));
      }
    }
    if (!released) Release(&group, status, &expected);
    group.clear();
  }
}

// The group's callers learn `status`; the next group is expected to hold
// them (those that come back) and what queued behind them meanwhile.
void CommitWriter::Release(std::vector<Waiter>* group, const Status& status,
                           size_t* expected) {
  {
    std::lock_guard lock(mu_);
    *expected = queue_.size() + group->size();
    OpenReturnSample(group->size(), Clock::now());
  }
  Tell(group, status);
}

void CommitWriter::Tell(std::vector<Waiter>* group, const Status& status) {
  for (Waiter& w : *group) w.done(status);
  if (options_.on_group_told) options_.on_group_told(group->size());
}

// While the rest come back, what has come back is written, unsynced: the
// group's one sync covers it, and the memtable and WAL work is done while
// the callers are busy rather than after them. Waits at most one write's
// time in all.
Status CommitWriter::GatherWritingEarly(std::unique_lock<std::mutex>& lock,
                                        size_t expected,
                                        std::vector<Waiter>* group,
                                        size_t* bytes,
                                        std::vector<const Transition*>* batch,
                                        size_t* written_early) {
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double, std::nano>(write_ns_));
  const size_t early_batch =
      options_.sync ? std::max<size_t>(kEarlyWriteBatch, expected / 8)
                    : expected;
  for (;;) {
    const size_t missing = expected - std::min(expected, group->size());
    const size_t wanted = std::min(missing, early_batch);
    if (queue_.size() < wanted && !stopping_) {
      lock.unlock();
      SpinForQueued(wanted, deadline);
      lock.lock();
    }
    wake_at_ = wanted;
    const bool ready = work_.wait_until(
        lock, deadline, [&] { return stopping_ || queue_.size() >= wake_at_; });
    wake_at_ = 0;
    if (!ready || stopping_ || queue_.size() >= missing) return Status::OK();
    const size_t before = group->size();
    bool full = false;
    *bytes += TakeGroup(group, *bytes, &full);
    if (group->size() == before) return Status::OK();  // full already
    const bool measure = stats_.early_writes % 2 == 0;
    lock.unlock();
    batch->clear();
    for (size_t i = before; i < group->size(); ++i) {
      batch->push_back(&(*group)[i].transition);
    }
    const double cpu_start = measure ? ThreadCpuNs() : 0;
    Status status = store_->WriteUnsynced(*batch);
    const double cpu_ns = measure ? ThreadCpuNs() - cpu_start : 0;
    *written_early = group->size();
    lock.lock();
    if (measure && status.ok()) {
      stats_.early_write_cpu_ns += static_cast<uint64_t>(cpu_ns);
      stats_.early_write_cpu_transitions += batch->size();
      write_cpu_ns_ =
          Average(write_cpu_ns_, cpu_ns / static_cast<double>(batch->size()));
    }
    ++stats_.early_writes;
    if (!status.ok() || full) return status;
  }
}

// The returning callers enqueue every few microseconds while they are
// busy: watching the queue's length catches the next batch and the last
// return as they happen, where sleeping on work_ would cost each of them a
// futex wake (a system call on the caller's thread, on the engine's loop)
// and the writer its wake-up. When the arrivals stop for longer than
// kSpinGap (the callers are idle or descheduled) it stops watching and
// sleeps on work_ as before.
void CommitWriter::SpinForQueued(size_t wanted, Clock::time_point deadline) {
  size_t seen = queued_.load(std::memory_order_acquire);
  Clock::time_point last_arrival = Clock::now();
  while (seen < wanted) {
    for (int i = 0; i < 16; ++i) CpuRelax();
    const size_t now_queued = queued_.load(std::memory_order_acquire);
    const Clock::time_point now = Clock::now();
    if (now_queued != seen) {
      seen = now_queued;
      last_arrival = now;
    } else if (now - last_arrival >= kSpinGap || now >= deadline) {
      return;
    }
  }
}

size_t CommitWriter::TakeGroup(std::vector<Waiter>* group, size_t taken_bytes,
                               bool* full) {
  size_t bytes = 0;
  const size_t before = group->size();
  while (!queue_.empty()) {
    const size_t next = queue_.front().transition.ByteSize();
    if (!group->empty() &&
        taken_bytes + bytes + next > options_.max_batch_bytes) {
      if (full != nullptr) *full = true;
      break;
    }
    bytes += next;
    group->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  stats_.queued -= group->size() - before;
  queued_.store(queue_.size(), std::memory_order_release);
  return bytes;
}

void CommitWriter::CountGroup(size_t transitions, size_t bytes) {
  stats_.groups += 1;
  stats_.transitions += transitions;
  stats_.bytes += bytes;
  stats_.largest_group = std::max<uint64_t>(stats_.largest_group, transitions);
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
        wake_at_ = 1;
        work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        wake_at_ = 0;
        // Stopping, and everything is written: every written group is the
        // syncer's, who syncs until none is left.
        if (queue_.empty()) return;
        bytes = TakeGroup(&group);
        CountGroup(group.size(), bytes);
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
        Tell(&group, status);
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
      Tell(&syncing, status);
      syncing.clear();
    }
  }
}

}  // namespace cde
