#include "engine/loop_committer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>

namespace cde {

LoopCommitter::LoopCommitter(uv_loop_t* loop, CommitWriter* writer,
                             CommitPolling polling, uint64_t lead_ns)
    : writer_(writer), mode_(polling), lead_ns_(lead_ns) {
  int rc = uv_async_init(loop, &async_, &LoopCommitter::OnAsync);
  assert(rc == 0 && "uv_async_init cannot fail on a live loop");
  rc = uv_idle_init(loop, &poll_);
  assert(rc == 0 && "uv_idle_init cannot fail");
  rc = uv_prepare_init(loop, &reap_);
  assert(rc == 0 && "uv_prepare_init cannot fail");
  (void)rc;
  async_.data = this;
  poll_.data = this;
  reap_.data = this;
  if (mode_ != CommitPolling::kAdaptive) return;
  wake_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (wake_fd_ >= 0 && uv_poll_init(loop, &wake_, wake_fd_) == 0) {
    wake_.data = this;
    uv_poll_start(&wake_, UV_READABLE, &LoopCommitter::OnWake);
    ++open_handles_;
  } else if (wake_fd_ >= 0) {
    // Without the timer the loop cannot wake ahead of a completion: it
    // polls after each completion only, and sleeps between groups.
    close(wake_fd_);
    wake_fd_ = -1;
  }
}

LoopCommitter::~LoopCommitter() {
  assert(closed_ && "close the LoopCommitter before destroying it");
}

// Before the loop blocks in epoll: nothing is left to run, so what the
// continuations held can go. Not while polling: a polling loop is still
// taking a group's completions (or, polling always, spinning through a
// sync, which OnPoll reaps in once the group is quiet).
void LoopCommitter::OnPrepare(uv_prepare_t* handle) {
  auto* self = static_cast<LoopCommitter*>(handle->data);
  if (!self->polling_) self->Reap();
}

void LoopCommitter::Reap() {
  if (retired_count_ == 0) return;
  retired_.clear();
  retired_count_ = 0;
  uv_prepare_stop(&reap_);
}

void LoopCommitter::Commit(Transition transition, Then then) {
  ++in_flight_;
  if (mode_ == CommitPolling::kAlways && !polling_ && !poll_spent_ &&
      in_flight_ >= kPollInFlight) {
    StartPolling(uv_hrtime());
  }
  writer_->Enqueue(std::move(transition),
                   [this, then = std::move(then)](const Status& s) mutable {
                     {
                       std::lock_guard lock(mu_);
                       completed_.push_back({std::move(then), s});
                     }
                     uv_async_send(&async_);
                   });
}

void LoopCommitter::OnAsync(uv_async_t* handle) {
  static_cast<LoopCommitter*>(handle->data)->Drain();
}

// Each turn of a polling loop: what the writer completed since the last.
void LoopCommitter::OnPoll(uv_idle_t* handle) {
  auto* self = static_cast<LoopCommitter*>(handle->data);
  bool completed;
  {
    std::lock_guard lock(self->mu_);
    completed = !self->completed_.empty();
  }
  if (completed) {
    self->Drain();
    return;
  }
  if (self->mode_ == CommitPolling::kAlways) {
    if (uv_hrtime() - self->last_drain_ns_ >= kQuietNs) self->Reap();
    if (uv_now(handle->loop) - self->polled_since_ >= kPollBudgetMs) {
      self->poll_spent_ = true;
      self->StopPolling();
    }
    return;
  }
  const uint64_t now = uv_hrtime();
  if (self->asleep_since_ns_ == 0) {
    // Polling for the rest of a group: once the loop has been quiet, the
    // group's completions are in and the next ones are a sync away.
    if (now - self->last_drain_ns_ >= kQuietNs) {
      self->StopPolling();
      self->Sleep(now);
    }
    return;
  }
  // Polling for a completion that is due: woken ahead of it, or through a
  // gap too short to sleep in. One that does not come within the budget
  // was late this time; the loop sleeps until it wakes it (and the gap is
  // still measured from when the group went quiet). The loop has nothing
  // else to do meanwhile.
  self->Reap();
  const uint64_t budget = self->woken_ ? kWokenBudgetLeads * self->lead_ns_
                                       : kPollBudgetMs * 1'000'000;
  if (now - self->poll_start_ns_ >= budget) {
    self->StopPolling();
    self->woken_ = false;
  }
}

void LoopCommitter::OnWake(uv_poll_t* handle, int, int) {
  auto* self = static_cast<LoopCommitter*>(handle->data);
  uint64_t expirations;
  while (read(self->wake_fd_, &expirations, sizeof expirations) > 0) {
  }
  self->wake_armed_ = false;
  if (self->polling_ || self->in_flight_ < kPollInFlight) return;
  self->woken_ = true;
  self->StartPolling(uv_hrtime());
}

void LoopCommitter::StartPolling(uint64_t now_ns) {
  polling_ = true;
  poll_start_ns_ = now_ns;
  polled_since_ = uv_now(poll_.loop);
  uv_idle_start(&poll_, &LoopCommitter::OnPoll);
}

void LoopCommitter::StopPolling() {
  polling_ = false;
  uv_idle_stop(&poll_);
}

// Sets the wake timer a little before the next completion is due, as far
// as the gaps so far tell: the loop sleeps through most of the sync and
// polls only for its end.
void LoopCommitter::Sleep(uint64_t now_ns) {
  asleep_since_ns_ = now_ns;
  if (wake_fd_ < 0 || gaps_seen_ == 0) return;
  // The median of the last few: a preempted writer or a stalled disk now
  // and then does not move it, nor does a group that was cut in two.
  std::array<uint64_t, kGaps> gaps = gaps_;
  const size_t n = std::min(gaps_seen_, gaps.size());
  std::nth_element(gaps.begin(), gaps.begin() + n / 2, gaps.begin() + n);
  const uint64_t gap = gaps[n / 2];
  if (gap <= 2 * lead_ns_) {
    // A wake-up would cost about as much as polling on: poll through it.
    StartPolling(now_ns);
    return;
  }
  const uint64_t delay = gap - lead_ns_;
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(delay / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(delay % 1'000'000'000);
  if (timerfd_settime(wake_fd_, 0, &spec, nullptr) == 0) wake_armed_ = true;
}

void LoopCommitter::DisarmWake() {
  if (!wake_armed_) return;
  itimerspec spec{};
  timerfd_settime(wake_fd_, 0, &spec, nullptr);
  wake_armed_ = false;
}

void LoopCommitter::Drain() {
  std::vector<Completion> ready;
  {
    std::lock_guard lock(mu_);
    ready.swap(completed_);
  }
  in_flight_ -= ready.size();
  poll_spent_ = false;
  polled_since_ = uv_now(poll_.loop);
  if (mode_ == CommitPolling::kAdaptive && !ready.empty()) {
    if (asleep_since_ns_ != 0) {
      gaps_[gaps_seen_++ % gaps_.size()] = uv_hrtime() - asleep_since_ns_;
      asleep_since_ns_ = 0;
    }
    DisarmWake();
    woken_ = false;
  }
  for (Completion& c : ready) c.then(c.status);
  // A continuation may have closed the committer (and its reap handle).
  if (!ready.empty() && !closing_) {
    retired_count_ += ready.size();
    retired_.push_back(std::move(ready));
    if (retired_count_ >= kRetiredCompletions) {
      Reap();
    } else {
      uv_prepare_start(&reap_, &LoopCommitter::OnPrepare);
    }
  }
  last_drain_ns_ = uv_hrtime();
  if (mode_ == CommitPolling::kAdaptive) {
    // The rest of the group follows within microseconds: poll for it.
    if (!polling_ && in_flight_ >= kPollInFlight) StartPolling(last_drain_ns_);
  }
  if (polling_ && in_flight_ < kPollInFlight) StopPolling();
}

void LoopCommitter::Close(std::function<void()> on_closed) {
  assert(in_flight_ == 0 && "drain commits before closing");
  on_closed_ = std::move(on_closed);
  closing_ = true;
  polling_ = false;
  DisarmWake();
  Reap();
  uv_close(reinterpret_cast<uv_handle_t*>(&reap_), &LoopCommitter::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &LoopCommitter::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), &LoopCommitter::OnClose);
  if (wake_fd_ >= 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&wake_), &LoopCommitter::OnClose);
  }
}

void LoopCommitter::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<LoopCommitter*>(handle->data);
  if (--self->open_handles_ > 0) return;  // every handle, then the callback
  if (self->wake_fd_ >= 0) close(self->wake_fd_);
  self->wake_fd_ = -1;
  self->closed_ = true;
  if (self->on_closed_) self->on_closed_();
}

}  // namespace cde
