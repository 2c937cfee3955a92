#include "engine/clock.h"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace cde {
namespace {

class UvTimer final : public Timer {
 public:
  UvTimer(uv_loop_t* loop, std::function<void()> fire)
      : fire_(std::move(fire)) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
  }
  void Start(int64_t delay_ms, int64_t repeat_ms) override {
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<UvTimer*>(t->data)->fire_(); },
        static_cast<uint64_t>(std::max<int64_t>(0, delay_ms)),
        static_cast<uint64_t>(std::max<int64_t>(0, repeat_ms)));
  }
  void Stop() override { uv_timer_stop(&timer_); }
  void Close(std::function<void()> closed) override {
    closed_ = std::move(closed);
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
      auto* self = static_cast<UvTimer*>(h->data);
      auto closed = std::move(self->closed_);
      delete self;
      if (closed) closed();
    });
  }

 private:
  ~UvTimer() override = default;
  uv_timer_t timer_;
  std::function<void()> fire_;
  std::function<void()> closed_;
};

class SystemClock final : public Clock {
 public:
  explicit SystemClock(uv_loop_t* loop) : loop_(loop) {}
  int64_t WallMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() const override {
    return static_cast<int64_t>(uv_now(loop_));
  }
  TimerPtr NewTimer(std::function<void()> fire) override {
    return TimerPtr(new UvTimer(loop_, std::move(fire)));
  }

 private:
  uv_loop_t* const loop_;
};

}  // namespace

std::shared_ptr<Clock> NewSystemClock(uv_loop_t* loop) {
  return std::make_shared<SystemClock>(loop);
}

class ManualClock::Manual final : public Timer {
 public:
  Manual(ManualClock* clock, std::function<void()> fire)
      : clock_(clock), fire_(std::move(fire)) {}
  void Start(int64_t delay_ms, int64_t repeat_ms) override {
    due_ = clock_->mono_ms_ + std::max<int64_t>(0, delay_ms);
    repeat_ = std::max<int64_t>(0, repeat_ms);
    armed_ = true;
  }
  void Stop() override { armed_ = false; }
  void Close(std::function<void()> closed) override {
    armed_ = false;
    auto& live = clock_->timers_;
    live.erase(std::remove(live.begin(), live.end(), this), live.end());
    clock_->closed_.push_back(this);
    clock_->Collect();
    if (closed) closed();
  }
  ~Manual() override = default;

 private:
  friend class ManualClock;
  ManualClock* const clock_;
  std::function<void()> fire_;
  int64_t due_ = 0;
  int64_t repeat_ = 0;
  bool armed_ = false;
};

ManualClock::ManualClock(int64_t wall_ms)
    : wall_ms_(wall_ms >= 0
                   ? wall_ms
                   : std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count()) {}

ManualClock::~ManualClock() {
  assert(timers_.empty() && "a timer outlives its clock");
  assert(firing_ == 0);
  for (Manual* t : closed_) delete t;
}

TimerPtr ManualClock::NewTimer(std::function<void()> fire) {
  auto* t = new Manual(this, std::move(fire));
  timers_.push_back(t);
  return TimerPtr(t);
}

void ManualClock::Advance(int64_t ms) {
  const int64_t until = mono_ms_ + std::max<int64_t>(0, ms);
  for (;;) {
    // Scanned again after each firing: a callback may arm, stop or close
    // any timer.
    Manual* next = nullptr;
    for (Manual* t : timers_) {
      if (t->armed_ && t->due_ <= until && (!next || t->due_ < next->due_)) {
        next = t;
      }
    }
    if (next == nullptr) break;
    wall_ms_ += next->due_ - mono_ms_;
    mono_ms_ = next->due_;
    Fire(next);
  }
  wall_ms_ += until - mono_ms_;
  mono_ms_ = until;
}

void ManualClock::Fire(Manual* t) {
  if (t->repeat_ > 0) {
    t->due_ += t->repeat_;
  } else {
    t->armed_ = false;
  }
  ++firing_;  // a timer closed meanwhile (even this one) is deleted after
  t->fire_();
  --firing_;
  Collect();
}

void ManualClock::Collect() {
  if (firing_ > 0) return;
  for (Manual* t : closed_) delete t;
  closed_.clear();
}

int64_t ManualClock::NextDueIn() const {
  int64_t next = -1;
  for (const Manual* t : timers_) {
    if (t->armed_ && (next < 0 || t->due_ < next)) next = t->due_;
  }
  return next < 0 ? -1 : next - mono_ms_;
}

size_t ManualClock::armed() const {
  size_t n = 0;
  for (const Manual* t : timers_) n += t->armed_ ? 1 : 0;
  return n;
}

}  // namespace cde
