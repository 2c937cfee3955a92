// LoopCommitter: commits transitions through the CommitWriter and runs each
// continuation on the libuv loop thread once its commit has landed. This is
// the engine's "log, commit, then act": nothing that depends on a transition
// happens before the transition is durable, and the loop never waits on disk.
//
// Completions cross from the writer thread through one owned uv_async_t.
// uv_async_send coalesces, so OnAsync drains a queue rather than assuming one
// callback per commit.
//
// Polling (CommitPolling): while at least kPollInFlight commits are in
// flight, an idle handle can keep the loop turning instead of sleeping in
// epoll, so a group's completions are taken the moment the writer posts
// them rather than after the loop thread's wake-up (tens of microseconds on
// a virtual machine), with the caches still warm. `always` polls from the
// first of those commits until a completion comes (at most kPollBudgetMs
// without one): a CPU on the loop thread while the disk syncs. `adaptive`
// polls only where completions are due: after a completion, until the
// group's last one is in and the loop has been quiet for kQuietNs; then it
// sleeps, with a timerfd set kLeadNs before the next completion is due (the
// median of the last gaps from falling asleep to a completion), and polls
// from that wake-up for at most kWokenBudgetLeads leads; a gap of under two
// leads it polls through (at most kPollBudgetMs). A gap is always measured
// from the group's going quiet, so polling through short gaps does not
// shorten the next ones. One commit at a time never polls.
//
// Continuations are destroyed after the loop has gone quiet, not as they
// run: what they hold (a committed plan, the saga state it replaced, the
// callbacks it answered) is freed while the disk syncs the next group, off
// the loop's pass that produces that group (see Reap).
//
// Thread safety: Commit, Close and the destructor run on the loop thread.
#ifndef CDE_ENGINE_LOOP_COMMITTER_H_
#define CDE_ENGINE_LOOP_COMMITTER_H_

#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "engine/commit_polling.h"
#include "storage/commit_writer.h"

namespace cde {

class LoopCommitter {
 public:
  // Runs on the loop thread with the commit's status.
  using Then = std::function<void(const Status&)>;

  // Commits in flight from which a polling committer polls.
  static constexpr size_t kPollInFlight = 8;
  // How long a polling committer polls without a completion.
  static constexpr uint64_t kPollBudgetMs = 5;
  // Adaptive polling: how long before a completion is due the loop wakes
  // to poll, and how long it polls on after a completion.
  static constexpr uint64_t kLeadNs = 150'000;
  static constexpr uint64_t kQuietNs = 20'000;
  // How long a loop woken ahead polls for a completion that has not come
  // (in leads).
  static constexpr uint64_t kWokenBudgetLeads = 4;

  // REQUIRES: `loop` and `writer` outlive this object. `lead_ns`: the
  // adaptive lead (tests that must not depend on a loaded machine waking
  // the loop within 150 us give it more).
  LoopCommitter(uv_loop_t* loop, CommitWriter* writer,
                CommitPolling polling = CommitPolling::kOff,
                uint64_t lead_ns = kLeadNs);
  LoopCommitter(const LoopCommitter&) = delete;
  LoopCommitter& operator=(const LoopCommitter&) = delete;
  // REQUIRES: Close() was called and its callback has run.
  ~LoopCommitter();

  void Commit(Transition transition, Then then);

  // Commits enqueued but whose continuation has not run yet.
  size_t in_flight() const { return in_flight_; }
  // Whether the loop is kept turning for completions now.
  bool polling() const { return polling_; }

  // Closes its handles; `on_closed` runs on the loop once both are closed.
  // REQUIRES: in_flight() == 0 (drain first: continuations need the handle).
  void Close(std::function<void()> on_closed);

 private:
  struct Completion {
    Then then;
    Status status;
  };

  static void OnAsync(uv_async_t* handle);
  static void OnPoll(uv_idle_t* handle);
  static void OnWake(uv_poll_t* handle, int status, int events);
  static void OnPrepare(uv_prepare_t* handle);
  // Destroys the continuations that have run.
  void Reap();
  void StartPolling(uint64_t now_ns);
  void StopPolling();
  // Adaptive: the loop is about to sleep with commits in flight.
  void Sleep(uint64_t now_ns);
  void DisarmWake();
  static void OnClose(uv_handle_t* handle);
  void Drain();

  uv_async_t async_;
  uv_idle_t poll_;     // active while polling_
  uv_poll_t wake_;     // the timerfd that wakes the loop to poll
  uv_prepare_t reap_;  // before the loop blocks: Reap
  int wake_fd_ = -1;
  CommitWriter* const writer_;
  const CommitPolling mode_;
  const uint64_t lead_ns_;
  bool polling_ = false;
  bool wake_armed_ = false;
  bool woken_ = false;            // polling because the wake timer fired
  uint64_t poll_start_ns_ = 0;    // when the current polling began
  uint64_t last_drain_ns_ = 0;    // when the last Drain ended
  uint64_t asleep_since_ns_ = 0;  // 0: not asleep with commits in flight
  // From falling asleep to the next completion: the last kGaps samples.
  static constexpr size_t kGaps = 8;
  std::array<uint64_t, kGaps> gaps_{};
  size_t gaps_seen_ = 0;
  bool poll_spent_ = false;    // the budget ran out: no polling until Drain
  uint64_t polled_since_ = 0;  // uv_now of the last completion or start
  size_t in_flight_ = 0;
  int open_handles_ = 3;  // 4 with the wake timer
  bool closing_ = false;  // Close was called
  bool closed_ = false;
  std::function<void()> on_closed_;

  // Continuations that have run, by Drain, until Reap; at most
  // kRetiredCompletions before Drain reaps them itself.
  static constexpr size_t kRetiredCompletions = 4096;
  std::vector<std::vector<Completion>> retired_;
  size_t retired_count_ = 0;

  std::mutex mu_;
  std::vector<Completion> completed_;  // GUARDED_BY(mu_); filled by writer
};

}  // namespace cde

#endif  // CDE_ENGINE_LOOP_COMMITTER_H_
