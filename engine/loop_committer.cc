#include "engine/loop_committer.h"

#include <cassert>

namespace cde {

LoopCommitter::LoopCommitter(uv_loop_t* loop, CommitWriter* writer, bool poll)
    : writer_(writer), poll_enabled_(poll) {
  int rc = uv_async_init(loop, &async_, &LoopCommitter::OnAsync);
  assert(rc == 0 && "uv_async_init cannot fail on a live loop");
  rc = uv_idle_init(loop, &poll_);
  assert(rc == 0 && "uv_idle_init cannot fail");
  (void)rc;
  async_.data = this;
  poll_.data = this;
}

LoopCommitter::~LoopCommitter() {
  assert(closed_ && "close the LoopCommitter before destroying it");
}

void LoopCommitter::Commit(Transition transition, Then then) {
  ++in_flight_;
  if (poll_enabled_ && !polling_ && !poll_spent_ &&
      in_flight_ >= kPollInFlight) {
    polling_ = true;
    polled_since_ = uv_now(poll_.loop);
    uv_idle_start(&poll_, &LoopCommitter::OnPoll);
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
  } else if (uv_now(handle->loop) - self->polled_since_ >= kPollBudgetMs) {
    self->poll_spent_ = true;
    self->StopPolling();
  }
}

void LoopCommitter::StopPolling() {
  polling_ = false;
  uv_idle_stop(&poll_);
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
  for (Completion& c : ready) c.then(c.status);
  if (polling_ && in_flight_ < kPollInFlight) StopPolling();
}

void LoopCommitter::Close(std::function<void()> on_closed) {
  assert(in_flight_ == 0 && "drain commits before closing");
  on_closed_ = std::move(on_closed);
  polling_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &LoopCommitter::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), &LoopCommitter::OnClose);
}

void LoopCommitter::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<LoopCommitter*>(handle->data);
  if (--self->open_handles_ > 0) return;  // both handles, then the callback
  self->closed_ = true;
  if (self->on_closed_) self->on_closed_();
}

}  // namespace cde
