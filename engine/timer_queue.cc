#include "engine/timer_queue.h"

#include <algorithm>

namespace cde {

TimerQueue::TimerQueue(Clock& clock, OnDue on_due)
    : clock_(clock),
      timer_(clock.NewTimer([this] { FireDue(); })),
      on_due_(std::move(on_due)) {}

void TimerQueue::Add(Entry entry) {
  if (closing_) return;
  heap_.push(std::move(entry));
  Rearm();
}

void TimerQueue::Rearm() {
  if (closing_) return;
  if (heap_.empty()) {
    timer_->Stop();
    armed_for_ = -1;
    return;
  }
  const int64_t due = heap_.top().due_ms;
  if (due == armed_for_) return;
  armed_for_ = due;
  timer_->Start(std::max<int64_t>(0, due - clock_.WallMs()));
}

void TimerQueue::FireDue() {
  armed_for_ = -1;
  const int64_t now = clock_.WallMs();
  // Collect first: on_due_ may add timers (a retry's next backoff).
  std::vector<Entry> due;
  while (!heap_.empty() && heap_.top().due_ms <= now) {
    due.push_back(heap_.top());
    heap_.pop();
  }
  for (const Entry& e : due) {
    if (closing_) return;
    on_due_(e);
  }
  Rearm();
}

void TimerQueue::Close(std::function<void()> on_closed) {
  closing_ = true;
  timer_.release()->Close(std::move(on_closed));
}

}  // namespace cde
