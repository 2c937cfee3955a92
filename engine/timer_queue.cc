#include "engine/timer_queue.h"

#include <cassert>

namespace cde {

TimerQueue::TimerQueue(uv_loop_t* loop, WallClock now, OnDue on_due)
    : now_(std::move(now)), on_due_(std::move(on_due)) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

TimerQueue::~TimerQueue() { assert(closed_ && "Close() the TimerQueue first"); }

void TimerQueue::Add(Entry entry) {
  if (closing_) return;
  heap_.push(std::move(entry));
  Rearm();
}

void TimerQueue::Rearm() {
  if (closing_) return;
  if (heap_.empty()) {
    uv_timer_stop(&timer_);
    armed_for_ = -1;
    return;
  }
  const int64_t due = heap_.top().due_ms;
  if (due == armed_for_) return;
  armed_for_ = due;
  const int64_t delay = std::max<int64_t>(0, due - now_());
  uv_timer_start(&timer_, &TimerQueue::OnTimer, static_cast<uint64_t>(delay),
                 0);
}

void TimerQueue::OnTimer(uv_timer_t* handle) {
  static_cast<TimerQueue*>(handle->data)->FireDue();
}

void TimerQueue::FireDue() {
  armed_for_ = -1;
  const int64_t now = now_();
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
  on_closed_ = std::move(on_closed);
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &TimerQueue::OnClose);
}

void TimerQueue::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<TimerQueue*>(handle->data);
  self->closed_ = true;
  if (self->on_closed_) self->on_closed_();
}

}  // namespace cde
