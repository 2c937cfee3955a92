// LoopCommitter: commits transitions through the CommitWriter and runs each
// continuation on the libuv loop thread once its commit has landed. This is
// the engine's "log, commit, then act": nothing that depends on a transition
// happens before the transition is durable, and the loop never waits on disk.
//
// Completions cross from the writer thread through one owned uv_async_t.
// uv_async_send coalesces, so OnAsync drains a queue rather than assuming one
// callback per commit.
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

  // REQUIRES: `loop` and `writer` outlive this object.
  LoopCommitter(uv_loop_t* loop, CommitWriter* writer);
  LoopCommitter(const LoopCommitter&) = delete;
  LoopCommitter& operator=(const LoopCommitter&) = delete;
  // REQUIRES: Close() was called and its callback has run.
  ~LoopCommitter();

  void Commit(Transition transition, Then then);

  // Commits enqueued but whose continuation has not run yet.
  size_t in_flight() const { return in_flight_; }

  // Closes the async handle; `on_closed` runs on the loop once it is closed.
  // REQUIRES: in_flight() == 0 (drain first: continuations need the handle).
  void Close(std::function<void()> on_closed);

 private:
  struct Completion {
    Then then;
    Status status;
  };

  static void OnAsync(uv_async_t* handle);
  static void OnClose(uv_handle_t* handle);
  void Drain();

  uv_async_t async_;
  CommitWriter* const writer_;
  size_t in_flight_ = 0;
  bool closed_ = false;
  std::function<void()> on_closed_;

  std::mutex mu_;
  std::vector<Completion> completed_;  // GUARDED_BY(mu_); filled by writer
};

}  // namespace cde

#endif  // CDE_ENGINE_LOOP_COMMITTER_H_
