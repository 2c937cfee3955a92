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
  shutdown_done_ = std::move(done);
  if (attempts_in_flight_ > 0 && options.grace_ms > 0) {
    uv_timer_start(
        &grace_timer_,
        [](uv_timer_t* t) {
          static_cast<EngineImpl*>(t->data)->CheckpointInFlight();
        },
        static_cast<uint64_t>(options.grace_ms), 0);
  } else {
    CheckpointInFlight();
  }
  MaybeFinishShutdown();
}

void EngineImpl::CheckpointInFlight() {
  if (drained_) return;
  drained_ = true;
  uv_timer_stop(&grace_timer_);
  for (auto& [id, a] : active_) {
    if (a->in_flight) Checkpoint(*a);
  }
}

void EngineImpl::Checkpoint(Active& a) {
  AbandonAttempt(a);
  a.in_flight = false;
  a.checkpointed = true;
  --attempts_in_flight_;
  m_.attempts_in_flight->Set(static_cast<double>(attempts_in_flight_));
  const std::string id = a.saga.id;
  WhenIdle(a, [this, id] {
    auto it = active_.find(id);
    if (it == active_.end()) return;
    Active& a = *it->second;
    const Wait& w = a.saga.wait;
    if (w.kind != Wait::Kind::kAttempt) return;  // it moved on meanwhile
    Plan p;
    p.saga = a.saga;
    p.saga.checkpointed = true;
    p.previous_state = a.saga.state;
    p.events.push_back(
        {EventKind::kCheckpoint,
         {{"step", a.def->steps[static_cast<size_t>(w.step)].name},
          {"compensation", w.compensation},
          {"attempt", w.attempt},
          {"reason", "shutdown"}}});
    Transition t = p.Build(Now());
    a.committing = true;
    Commit(std::move(t),
           [this, id, saga = p.saga, data = p.events[0].data](const Status& s) {
             auto it = active_.find(id);
             if (it != active_.end()) {
               it->second->committing = false;
               if (s.ok()) it->second->saga = saga;
             }
             if (s.ok()) {
               m_.checkpoints->Increment();
               LogSagaEvent(saga, EventKind::kCheckpoint, data);
             }
             if (!s.ok()) health_ = s;
             MaybeFinishShutdown();
           });
  });
}

void EngineImpl::MaybeFinishShutdown() {
  if (!shutting_down_ || !shutdown_done_) return;
  if (!drained_ && attempts_in_flight_ == 0) {
    CheckpointInFlight();  // every running attempt finished in time
  }
  if (!drained_) return;
  if (committer_->in_flight() > 0 || blocking_work_ > 0) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  // Attempts still running are abandoned: they re-run after the next Open.
  for (auto& [id, a] : active_) AbandonAttempt(*a);
  auto closed = [this, done] {
    if (--handles_open_ > 0) return;
    writer_->Stop();
    Status s = store_->Close();
    done(s);
  };
  timers_->Close(closed);
  for (uv_timer_t* timer : {&window_timer_, &grace_timer_}) {
    uv_timer_stop(timer);
    timer->data = new std::function<void()>(closed);
    uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) {
      std::unique_ptr<std::function<void()>> fn(
          static_cast<std::function<void()>*>(h->data));
      (*fn)();
    });
  }
  handles_open_ += CloseGates(closed);
  exec_->Close(closed);
  exec_for_clients_->Close(closed);
  http_->Close(closed);
  http_for_clients_->Close(closed);
  inbox_->Close(closed);
  committer_->Close(closed);
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
