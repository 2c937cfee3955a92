// TimerQueue: the engine's durable timers in memory. One Timer (clock.h) serves
// every timer: a min-heap ordered by due time decides when it fires next, so
// a million sleeping sagas cost heap entries, not a million libuv timers.
// The durable copy of each timer is its row in the store's `timers` family
// (written with the transition that set it); this queue is rebuilt from the
// sagas' snapshots on Open.
#ifndef CDE_ENGINE_TIMER_QUEUE_H_
#define CDE_ENGINE_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/kinds.h"

namespace cde {

class TimerQueue {
 public:
  struct Entry {
    int64_t due_ms;  // wall clock, ms since the epoch
    std::string saga_id;
    TimerKind kind;
    std::string path;  // the step it belongs to; "" for the saga's own
    bool operator>(const Entry& o) const { return due_ms > o.due_ms; }
  };
  using OnDue = std::function<void(const Entry&)>;

  // REQUIRES: `clock` outlives the queue.
  TimerQueue(Clock& clock, OnDue on_due);
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  void Add(Entry entry);
  size_t size() const { return heap_.size(); }
  // Stops firing and closes the handle; `on_closed` runs once it is closed.
  void Close(std::function<void()> on_closed);

 private:
  void Rearm();
  void FireDue();

  Clock& clock_;
  TimerPtr timer_;
  OnDue on_due_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  int64_t armed_for_ = -1;  // due time the uv timer is set for, -1 = none
  bool closing_ = false;
};

}  // namespace cde

#endif  // CDE_ENGINE_TIMER_QUEUE_H_
