// LoopCommitter: commits transitions through the CommitWriter and runs each
// continuation on the libuv loop thread once its commit has landed. This is
// the engine's "log, commit, then act": nothing that depends on a transition
// happens before the transition is durable, and the loop never waits on disk.
//
// Completions cross from the writer thread through one owned uv_async_t.
// uv_async_send coalesces, so OnAsync drains a queue rather than assuming one
// callback per commit.
//
// Polling (off by default): while at least kPollInFlight commits are in
// flight, an idle handle keeps the loop turning instead of sleeping in
// epoll, so a group's completions are taken the moment the writer posts
// them rather than after the loop thread's wake-up (tens of microseconds on
// a virtual machine), with the caches still warm. It spends a CPU on the
// loop thread while the disk syncs; one commit at a time never polls, and
// a disk that completes nothing for kPollBudgetMs (a stall, or a disk far
// slower than polling pays on) sends the loop back to sleep until the next
// completion wakes it.
//
// Thread safety: Commit, Close and the destructor run on the loop thread.
#ifndef CDE_ENGINE_LOOP_COMMITTER_H_
#define CDE_ENGINE_LOOP_COMMITTER_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

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

  // REQUIRES: `loop` and `writer` outlive this object.
  LoopCommitter(uv_loop_t* loop, CommitWriter* writer, bool poll = false);
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
  void StopPolling();
  static void OnClose(uv_handle_t* handle);
  void Drain();

  uv_async_t async_;
  uv_idle_t poll_;  // active while polling_
  CommitWriter* const writer_;
  const bool poll_enabled_;
  bool polling_ = false;
  bool poll_spent_ = false;    // the budget ran out: no polling until Drain
  uint64_t polled_since_ = 0;  // uv_now of the last completion or start
  size_t in_flight_ = 0;
  int open_handles_ = 2;
  bool closed_ = false;
  std::function<void()> on_closed_;

  std::mutex mu_;
  std::vector<Completion> completed_;  // GUARDED_BY(mu_); filled by writer
};

}  // namespace cde

#endif  // CDE_ENGINE_LOOP_COMMITTER_H_
