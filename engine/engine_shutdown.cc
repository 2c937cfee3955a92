// EngineImpl: graceful shutdown. A grace period for running attempts,
// checkpoints for those that outlive it, then every handle and the store
// closed.
#include "engine/engine_impl.h"
#include "engine/log.h"

namespace cde {

void EngineImpl::Shutdown(ShutdownOptions options,
                          std::function<void(Status)> done) {
  if (shutting_down_) {
    done(Status::ShutdownInProgress("shutdown already under way"));
    return;
  }
  shutting_down_ = true;
  gates_.Stop();
  shutdown_done_ = std::move(done);
  if (attempts_.count() > 0 && options.grace_ms > 0) {
    grace_timer_->Start(options.grace_ms);
  } else {
    CheckpointInFlight();
  }
  // Drains once every attempt has finished or been checkpointed and every
  // commit and read off the loop has called back.
  work_.Close([this] { FinishShutdown(); });
}

void EngineImpl::CheckpointInFlight() {
  if (drained_) return;
  drained_ = true;
  grace_timer_->Stop();
  for (auto& [id, a] : active_) {
    if (a->in_flight()) Checkpoint(*a);
  }
}

void EngineImpl::Checkpoint(Active& a) {
  // Held until the checkpoint has committed (or found nothing to do).
  WorkGate::Holder busy = work_.Enter();
  for (auto& [path, attempt] : a.attempts) {
    Abandon(attempt);
    attempt.hold.Leave();
  }
  a.checkpointed = true;
  m_.attempts_in_flight->Set(static_cast<double>(attempts_.count()));
  const std::string id = a.saga.id;
  WhenIdle(a, [this, id, busy] {
    auto it = active_.find(id);
    if (it == active_.end()) return;
    Active& a = *it->second;
    Plan p;
    p.saga = a.saga;
    p.saga.checkpointed = true;
    p.previous_state = a.saga.state;
    for (const Wait& w : a.saga.waits) {
      if (w.kind != Wait::Kind::kAttempt) continue;
      p.events.push_back(
          {EventKind::kCheckpoint, EventData()
                                       .Set("step", w.path)
                                       .Set("compensation", w.compensation)
                                       .Set("attempt", w.attempt)
                                       .Set("reason", "shutdown")});
    }
    if (p.events.empty()) return;  // it moved on meanwhile
    std::vector<EventData> logged;
    for (const PlannedEvent& e : p.events) logged.push_back(e.data);
    Transition t = p.Build(Now());
    a.committing = true;
    Commit(std::move(t), [this, id, saga = p.saga, logged](const Status& s) {
      if (s.ok()) {
        m_.checkpoints->Increment();
        for (const EventData& data : logged) {
          LogSagaEvent(saga, EventKind::kCheckpoint, data);
        }
      } else {
        health_ = s;
      }
      auto it = active_.find(id);
      if (it == active_.end()) return;
      Active& a = *it->second;
      a.committing = false;
      if (s.ok()) {
        a.saga = saga;
        a.committed_body.clear();  // not the body of this saga any more
      }
      // A cancel that arrived during the checkpoint is answered.
      RunDeferred(a);
    });
  });
}

void EngineImpl::OffLoop(std::function<void()> work,
                         std::function<void()> after) {
  RunBlocking(loop_, std::move(work),
              [hold = work_.Enter(), after = std::move(after)]() mutable {
                after();
                hold.Leave();
              });
}

void EngineImpl::FinishShutdown() {
  // Nothing holds work_, so no attempt runs; this stops what a native
  // action may still be doing for a checkpointed one.
  for (auto& [id, a] : active_) AbandonAttempts(*a);
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  // Each handle's close holds handles_ through a copy of `closed`.
  std::function<void()> closed = [hold = handles_.Enter()]() mutable {
    hold.Leave();
  };
  timers_->Close(closed);
  dormancy_->Close(closed);
  grace_timer_.release()->Close(closed);
  gates_.Close(closed);
  actions_->Close(closed);
  inbox_->Close(closed);
  committer_->Close(closed);
  closed = nullptr;
  handles_.Close([this, done] {
    writer_->Stop();
    done(store_->Close());
  });
}

Status ShutdownAndWait(uv_loop_t* loop, std::unique_ptr<Engine> engine,
                       ShutdownOptions options) {
  std::optional<Status> result;
  engine->Shutdown(options, [&result](Status s) { result = s; });
  while (!result) uv_run(loop, UV_RUN_ONCE);
  engine.reset();
  uv_run(loop, UV_RUN_NOWAIT);  // close callbacks of the last handles
  return *result;
}

}  // namespace cde
