// Clock: the engine's time and its timers. The system clock reads the wall
// clock (for due times, which the store keeps) and libuv's monotonic
// uv_now (for rate limits and breakers), and arms libuv timers. A
// ManualClock stands still until a test advances it, and fires the timers
// that fall due on the way, in order: a test of a backoff, a timeout, a
// rate limit or an hour's sleep takes no real time and cannot race.
//
// Thread safety: loop thread only (a ManualClock: the thread that runs the
// loop, which is the test's).
#ifndef CDE_ENGINE_CLOCK_H_
#define CDE_ENGINE_CLOCK_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace cde {

// One timer. Its owner ends it with Close (or by dropping its TimerPtr),
// after which `fire` never runs again; the object deletes itself.
class Timer {
 public:
  // Arms (or re-arms) the timer: `fire` runs `delay_ms` from now, then
  // every `repeat_ms` if that is > 0.
  virtual void Start(int64_t delay_ms, int64_t repeat_ms = 0) = 0;
  virtual void Stop() = 0;
  // `closed` (may be empty) runs once the timer is gone: for a libuv timer
  // on a later turn of the loop.
  virtual void Close(std::function<void()> closed) = 0;

 protected:
  virtual ~Timer() = default;
};

struct TimerCloser {
  void operator()(Timer* t) const { t->Close(nullptr); }
};
using TimerPtr = std::unique_ptr<Timer, TimerCloser>;

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the epoch: due times (Wait::due_ms, timer rows).
  virtual int64_t WallMs() const = 0;
  // Milliseconds on a clock that never goes back: rate limits, breakers.
  virtual int64_t MonotonicMs() const = 0;
  virtual TimerPtr NewTimer(std::function<void()> fire) = 0;
};

// The real time of `loop`'s thread. REQUIRES: `loop` outlives the clock.
std::shared_ptr<Clock> NewSystemClock(uv_loop_t* loop);

class ManualClock final : public Clock {
 public:
  // Starts at `wall_ms` (default: the real wall clock now).
  explicit ManualClock(int64_t wall_ms = -1);
  ~ManualClock() override;

  int64_t WallMs() const override { return wall_ms_; }
  int64_t MonotonicMs() const override { return mono_ms_; }
  TimerPtr NewTimer(std::function<void()> fire) override;

  // Moves time on by `ms`, firing every timer that falls due on the way in
  // due order, each with the clock at its due time (a timer armed by one
  // that fires is fired too if it falls due within the step).
  void Advance(int64_t ms);
  // The earliest time a timer is armed for, as an offset from now; -1 if
  // none is armed.
  int64_t NextDueIn() const;
  size_t armed() const;

 private:
  class Manual;
  void Fire(Manual* timer);
  void Collect();

  int64_t wall_ms_;
  int64_t mono_ms_ = 0;
  std::vector<Manual*> timers_;  // live ones
  std::vector<Manual*> closed_;  // deleted when no callback can be on them
  int firing_ = 0;
};

}  // namespace cde

#endif  // CDE_ENGINE_CLOCK_H_
