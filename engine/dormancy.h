// Dormancy: running sagas kept on disk, not in memory, while they wait for a
// timer (a sleep, a backoff) that is due beyond the near window. Their timer
// row stays in the store; every half window Dormancy reads the rows due
// within the window and wakes the sagas among them that are not in memory.
// A parked saga's automatic replay (its redrive timer) comes near the same
// way. So a million sleeping sagas cost disk, not memory.
//
// Dormancy decides and reads; the engine keeps its sagas (it wakes them
// through Hooks::wake). Thread safety: loop thread only, except that
// Hooks::off_loop runs the store reads on another thread.
#ifndef CDE_ENGINE_DORMANCY_H_
#define CDE_ENGINE_DORMANCY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/saga.h"
#include "storage/store.h"

namespace cde {

class Dormancy {
 public:
  struct Hooks {
    // Runs `read` off the loop thread and then `then` on it.
    std::function<void(std::function<void()> read, std::function<void()> then)>
        off_loop;
    // Whether timers are wanted now (not shutting down, store healthy,
    // sagas run): no scan starts, and no saga wakes, when false.
    std::function<bool()> running;
    // Whether the saga is in memory (it needs no waking).
    std::function<bool(const std::string& saga_id)> in_memory;
    // A dormant saga's timer is near: the engine makes it active again.
    std::function<void(Saga saga)> wake;
    // A dormant saga due within the window cannot be woken, now or ever: its
    // rows do not decode, or its body is not one the engine runs. The engine
    // parks it as poison with `record` (as stored, or UnreadableRecord).
    std::function<void(SagaRecord record, const std::string& reason)> poisoned;
    // A parked saga's automatic replay falls due within the window.
    std::function<void(const std::string& saga_id, int64_t due_ms)>
        redrive_near;
    // Timer rows that wake nothing: their saga has ended, is parked (a
    // poisoned saga's rows stay behind when it is parked), or is gone. The
    // engine deletes them, so that later scans do not read them again.
    std::function<void(std::vector<TimerRecord> rows)> stale;
  };

  // `window_ms` (>= 1): how near a timer must be for its saga to stay in
  // memory (EngineOptions::timer_window_ms).
  Dormancy(Clock& clock, Store& store, int64_t window_ms, Hooks hooks);

  // Whether a running saga may leave memory: it waits for sleeps and
  // backoffs only, each due beyond the window.
  bool MayLeaveMemory(const Saga& saga) const;
  // Whether a timer due at `due_ms` is beyond the window.
  bool BeyondWindow(int64_t due_ms) const;

  // Scans every half window from now on.
  void Start();
  // Scans now (unless a scan is under way): wakes the sagas whose timers
  // fall due within the window, and reports the near redrives.
  void Scan();
  // Stops scanning; `closed` runs once its timer is closed.
  void Close(std::function<void()> closed);

 private:
  // `rows`: the timer rows due within the window of sagas not in memory.
  void WakeMissing(std::vector<TimerRecord> rows);

  Clock& clock_;
  Store& store_;
  const int64_t window_ms_;
  Hooks hooks_;
  TimerPtr period_;
  bool scanning_ = false;
};

}  // namespace cde

#endif  // CDE_ENGINE_DORMANCY_H_
