// CommitWriter: group commit in the manner of LevelDB's DBImpl::Write.
//
// Callers enqueue transitions from any thread. One writer thread drains the
// queue into a group (up to max_batch_bytes, never splitting a transition),
// writes the group with a single Store::Write (synced by default) and then
// completes every waiter of the group with the same Status. Under load the
// queue fills while a sync is in flight, so each fsync carries many
// transitions; with one caller a commit costs about one fsync.
//
// The waiters a group releases often come straight back with their next
// transition (a saga's next step). They then miss the group already being
// written and wait a whole sync for the one after: a closed loop of N
// waiters settles into two groups of N / 2 taking turns, each sync carrying
// half of them. So the writer measures how long released waiters take to
// come back and how long a write waits off the CPU (for the disk) and, when
// all of them would be back sooner than that, waits for them (at most one
// write's time) and writes one group of N: one sync where there were two.
// Where they take longer (a busy loop, a fast disk) it does not wait, and
// the two half groups overlap the callers' work with the sync. While it
// waits, it writes those already back unsynced, a few at a time
// (Store::WriteUnsynced; reads do not see them yet), and the group's one
// sync at the end covers them: the memtable and WAL work overlaps the
// returns instead of following them.
//
// Pipelined (CommitWriterOptions::pipeline), a second thread overlaps each
// sync with the writes of the groups queued meanwhile, instead of gathering.
//
// After a failed write or sync the store refuses all later writes (see
// store.h), so every later waiter completes with that error as well: an
// acknowledgement is never given for a write whose fate is unknown.
//
// Thread safety: Enqueue and Stop may be called from any thread. Completion
// callbacks run on a writer thread and must be quick (hand the result to
// another thread, e.g. through a uv_async_t as engine/LoopCommitter does).
#ifndef CDE_STORAGE_COMMIT_WRITER_H_
#define CDE_STORAGE_COMMIT_WRITER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/status.h"
#include "storage/store.h"
#include "storage/transition.h"

namespace cde {

struct CommitWriterOptions {
  // true: a transition is on stable storage (fdatasync) before its waiter is
  // completed; a crash or power cut loses nothing acknowledged. false: the
  // write reaches the OS page cache only; a process crash loses nothing, but
  // a machine crash may lose the last acknowledged transitions.
  bool sync = true;
  // Upper bound on the bytes (keys + values) in one group. A transition
  // larger than this is written alone.
  size_t max_batch_bytes = 4 << 20;
  // Wait for released waiters to come back before starting the next group,
  // when all of them come back sooner than a write waits for the disk and
  // takes to write them (see above), writing those back meanwhile (with
  // `sync`). false: the next group starts with whatever is queued.
  bool gather_returning = true;
  // With `sync`: overlap each group's fdatasync with the writes of the
  // groups queued meanwhile. Two threads: one writes each group unsynced as
  // it is queued (Store::WriteUnsynced), the other syncs what has been
  // written (Store::SyncWritten), again and again, and completes it; a
  // thread that writes a group while no sync is under way syncs it itself.
  // Writes keep the queue's order. With gather_returning, the syncer waits
  // for the waiters its last sync released as the writer above waits for
  // them. Pays where a sync is long against a group's CPU; on a fast disk
  // and two cores the second thread and the smaller writes can cost more
  // than the overlap saves (docs/benchmarks.md).
  bool pipeline = false;
  // Optional: observes each group on the writer thread once its write has
  // returned and before its waiters are completed, with the number of
  // transitions and bytes in it (e.g. for a batch size histogram), and
  // whether the writer waited for returning waiters before taking it. Must
  // be quick, thread-safe, and must not call into the writer.
  std::function<void(size_t transitions, size_t bytes, bool gathered)>
      on_group_written;
  // Optional: runs on the thread that told a group's waiters their status,
  // once it has told every one of them (the power-cut test waits on it:
  // a group is acknowledged on one decision). Same rules.
  std::function<void(size_t waiters)> on_group_told;
};

struct CommitWriterStats {
  uint64_t groups = 0;       // Store::Write calls
  uint64_t transitions = 0;  // transitions written (or failed)
  uint64_t bytes = 0;
  uint64_t largest_group = 0;  // transitions in the largest group so far
  uint64_t queued = 0;         // waiting right now
  uint64_t gathered = 0;       // groups the writer waited for returning waiters
  // Unsynced writes of returning waiters made while gathering (each group's
  // sync covers its early writes).
  uint64_t early_writes = 0;
  // The writer thread's CPU time in the early writes it timed (every other
  // one), over the transitions those carried: what writing a transition
  // costs the writer while the engine's loop makes the next ones.
  uint64_t early_write_cpu_ns = 0;
  uint64_t early_write_cpu_transitions = 0;
  // Where a cycle's time goes, in nanoseconds summed over the run: from a
  // group's write ending to the first transition queued after it, over
  // `first_returns` groups (how soon callers come back; the completions'
  // hand-off included); waiting for returning waiters, over `gathered`
  // groups (the early writes included); and each group's last write, over
  // `groups` (with `sync`, its sync). The last two are the group-commit
  // writer's; under `pipeline` the first counts from each sync's end.
  uint64_t first_return_ns = 0;
  uint64_t first_returns = 0;
  // From a group's release to the last of its callers back, over
  // `all_returns` groups all of whose callers came back before the next
  // release; and from the group-commit writer's last write of a group
  // beginning to its callers being told (synced: the sync's end), over
  // `groups`. A cycle at a steady load is about these two and the time from
  // the last return to the last write.
  uint64_t all_return_ns = 0;
  uint64_t all_returns = 0;
  uint64_t tell_ns = 0;
  uint64_t gather_ns = 0;
  uint64_t write_ns = 0;
};

class CommitWriter {
 public:
  using Clock = std::chrono::steady_clock;
  // Runs on the writer thread with the status of the group's write, which
  // may be inside the store's write (Store::WriteSynced): it must be quick,
  // and it must not wait for another thread that reads the store.
  using Done = std::function<void(const Status&)>;

  // `store` must outlive the writer. Starts the writer thread.
  CommitWriter(Store* store, CommitWriterOptions options);
  CommitWriter(const CommitWriter&) = delete;
  CommitWriter& operator=(const CommitWriter&) = delete;
  // Stops (writing what is queued) and joins the thread.
  ~CommitWriter();

  // Queues `transition`; `done` runs once it is written or has failed.
  // After Stop(), `done` runs at once with ShutdownInProgress.
  void Enqueue(Transition transition, Done done);

  // Writes everything already queued, then ends the writer thread.
  // Idempotent; returns once the thread has ended.
  void Stop();

  CommitWriterStats stats() const;

 private:
  struct Waiter {
    Transition transition;
    Done done;
  };

  void Run();
  // Each of the two writer threads with `pipeline`.
  void RunPipelined();
  // Under `lock` (of mu_): waits for the `expected` waiters, writing those
  // back meanwhile (unsynced) into `group`, `*written_early` of which it
  // has written; the status of its last early write.
  Status GatherWritingEarly(std::unique_lock<std::mutex>& lock, size_t expected,
                            std::vector<Waiter>* group, size_t* bytes,
                            std::vector<const Transition*>* batch,
                            size_t* written_early);
  // Under mu_: moves queued waiters to the end of `group` while the
  // group's bytes (`taken_bytes` before this call) stay within
  // max_batch_bytes; sets `*full` when it stopped for that. Returns the
  // bytes it took.
  size_t TakeGroup(std::vector<Waiter>* group, size_t taken_bytes = 0,
                   bool* full = nullptr);
  // Without mu_: watches queued_ until it reaches `wanted`, the arrivals
  // pause, or `deadline` passes.
  void SpinForQueued(size_t wanted, Clock::time_point deadline);
  // Under mu_: a group taken, for stats().
  void CountGroup(size_t transitions, size_t bytes);
  // Tells a written group's waiters (not under mu_).
  void Release(std::vector<Waiter>* group, const Status& status,
               size_t* expected);
  // Tells `group`'s waiters `status`, then on_group_told (not under mu_).
  void Tell(std::vector<Waiter>* group, const Status& status);
  // Under mu_: the group just written has released `released` waiters.
  void OpenReturnSample(size_t released, Clock::time_point now);
  // Under mu_: ends the open sample of how fast released waiters return.
  void CloseReturnSample(Clock::time_point now);
  // Under mu_: whether waiting for `expected` queued transitions is worth it.
  bool WorthGathering(size_t expected) const;

  Store* const store_;
  const CommitWriterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_;
  std::deque<Waiter> queue_;  // GUARDED_BY(mu_)
  // queue_.size(), written under mu_, for a writer watching without it.
  std::atomic<size_t> queued_{0};
  bool stopping_ = false;  // GUARDED_BY(mu_)
  // How fast released waiters return, and how long a write takes and waits
  // for the disk: moving averages (nanoseconds, or waiters). All
  // GUARDED_BY(mu_).
  double return_ns_ = -1;  // from a release to the last return; < 0: none yet
  double returned_ = -1;   // waiters that came back by then
  double write_ns_ = -1;   // < 0: no write yet
  double disk_wait_ns_ = -1;  // of a write's time, what it waited for I/O
  // An early write's CPU time per transition it wrote.
  double write_cpu_ns_ = -1;
  bool sample_open_ = false;
  size_t sample_released_ = 0;
  size_t sample_arrivals_ = 0;
  Clock::time_point sample_start_;
  // The queue length at which Enqueue wakes the writer: 1 when it waits for
  // work, the next early write or the last of the returning while it
  // gathers, 0 while it writes.
  size_t wake_at_ = 0;       // GUARDED_BY(mu_)
  CommitWriterStats stats_;  // GUARDED_BY(mu_)
  // With `pipeline`: held by the thread taking and writing groups, so that
  // groups are written in the order they were queued.
  std::mutex write_turn_;
  std::vector<Waiter> written_;  // not yet synced; GUARDED_BY(mu_)
  bool syncer_ = false;          // a thread is the syncer; GUARDED_BY(mu_)
  size_t being_written_ = 0;     // in the writer's hands; GUARDED_BY(mu_)
  std::condition_variable sync_work_;  // a gathering syncer waits on it
  std::thread thread_;
  std::thread second_thread_;  // with `pipeline`
};

}  // namespace cde

#endif  // CDE_STORAGE_COMMIT_WRITER_H_
