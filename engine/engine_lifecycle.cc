// EngineImpl: recovery on open, replay of parked sagas, watches, stats and
// shutdown.
#include <algorithm>

#include "engine/engine_impl.h"
#include "engine/log.h"

namespace cde {

Status EngineImpl::Recover() {
  auto defs = store_->ListDefinitions();
  if (!defs.ok()) return defs.status().WithContext("loading definitions");
  for (const DefinitionRecord& d : *defs) CDE_RETURN_IF_ERROR(AddDefinition(d));
  // The DLQ gauge starts from the store's count (a scan of the state index
  // and the DLQ: once per open), then follows parks and replays.
  auto counts = store_->Stats();
  if (!counts.ok()) return counts.status().WithContext("counting the DLQ");
  m_.dlq_entries->Set(static_cast<double>(counts->dlq_entries));

  auto records = store_->ListActiveSagas();
  if (!records.ok()) return records.status().WithContext("loading sagas");
  m_.sagas_in_flight->Set(static_cast<double>(records->size()));
  // Oldest first, so queued sagas keep their order.
  std::sort(
      records->begin(), records->end(),
      [](const SagaRecord& a, const SagaRecord& b) { return a.id < b.id; });
  std::vector<Active*> resumed;
  for (SagaRecord& record : *records) {
    DefPtr def = FindDefinition(record.workflow, record.version);
    auto saga = FromRecord(record);
    std::string poison;
    if (!def) {
      poison = "workflow " + record.workflow + "@" +
               std::to_string(record.version) + " is not registered";
    } else if (!saga.ok()) {
      poison = saga.status().message();
    } else if (saga->steps.size() != def->steps.size()) {
      poison = "snapshot has " + std::to_string(saga->steps.size()) +
               " steps, the definition " + std::to_string(def->steps.size());
    }
    if (!poison.empty()) {
      ParkPoisoned(std::move(record), poison);
      continue;
    }
    if (BeyondWindow(saga->wait)) {
      // Dormant: holds its slot, stays on disk until its timer is near.
      ++running_[def->name];
      continue;
    }
    auto active = std::make_unique<Active>();
    active->saga = std::move(saga).value();
    active->def = def;
    if (active->saga.wait.kind == Wait::Kind::kQueued) {
      queued_[def->name].push_back(active->saga.id);
    } else {
      ++running_[def->name];
      active->holds_slot = true;
    }
    resumed.push_back(active.get());
    active_[record.id] = std::move(active);
  }
  // Attempts a graceful shutdown cut off go first: they were running.
  std::stable_partition(resumed.begin(), resumed.end(),
                        [](const Active* a) { return a->saga.checkpointed; });
  for (Active* a : resumed) Resume(*a);
  for (const auto& [workflow, q] : queued_) FillSlots(workflow);
  // Automatic replays due soon, and dormant sagas: not a window later.
  LoadDueDormant();
  return Status::OK();
}

// Picks an active saga up where its snapshot says it was.
void EngineImpl::Resume(Active& a) {
  // Maintenance: the saga stays as its snapshot says; a server picks it up.
  if (!options_.run_sagas) return;
  const Wait& w = a.saga.wait;
  switch (w.kind) {
    case Wait::Kind::kAttempt:
      // Started, result never logged: run it again, same idempotency key.
      Dispatch(a);
      return;
    case Wait::Kind::kBackoff:
    case Wait::Kind::kSleep:
      timers_->Add({w.due_ms, a.saga.id,
                    w.kind == Wait::Kind::kSleep ? "sleep" : "backoff"});
      return;
    case Wait::Kind::kQueued:
      return;  // FillSlots decides
    case Wait::Kind::kRedrive:
      return;  // parked: never active
    case Wait::Kind::kNothing:
      Apply(a, PlanDequeue(Context(a), a.saga), nullptr);
      return;
  }
}

// A saga the engine cannot decode or advance goes to the DLQ with the
// reason, once, instead of crashing the engine or looping on it.
void EngineImpl::ParkPoisoned(SagaRecord record, const std::string& reason) {
  const std::optional<SagaState> previous = record.state;
  Transition t;
  t.AppendLog({record.id,
               record.last_seq + 1,
               Now(),
               "saga_poisoned",
               {{"error", reason}}});
  t.PutDlq({record.id, record.workflow, record.version, "poison", "", reason, 0,
            Now(), 0});
  record.last_seq += 1;
  record.state = SagaState::kParked;
  record.updated_ms = Now();
  t.PutSaga(record, previous);
  Commit(std::move(t),
         [this, id = record.id, wf = record.workflow, reason](const Status& s) {
           if (!s.ok()) health_ = s;
           if (s.ok()) {
             ObservePoisoned(wf);
             Log(LogLevel::kError, "engine", "saga_poisoned",
                 {.saga_id = id, .workflow = wf, .extra = {{"error", reason}}});
           }
           MaybeFinishShutdown();
         });
}

void EngineImpl::FillSlots(const std::string& workflow) {
  if (shutting_down_ || !options_.run_sagas) return;
  auto& q = queued_[workflow];
  uint32_t& running = running_[workflow];
  while (!q.empty()) {
    auto it = active_.find(q.front());
    if (it == active_.end()) {
      q.pop_front();
      continue;
    }
    const std::optional<uint32_t> limit = ConcurrencyLimit(*it->second->def);
    if (limit && running >= *limit) return;
    q.pop_front();
    ++running;
    it->second->holds_slot = true;
    const std::string next = it->first;
    WhenIdle(*it->second, [this, next] {
      auto it = active_.find(next);
      if (it == active_.end()) return;
      Active& n = *it->second;
      if (n.saga.wait.kind != Wait::Kind::kQueued) return;
      Apply(n, PlanDequeue(Context(n), n.saga), nullptr);
    });
  }
}

void EngineImpl::Replay(const std::string& saga_id,
                        const std::string& from_step,
                        Callback<SagaState> done) {
  if (shutting_down_) {
    return done(Status::ShutdownInProgress("the engine is shutting down"));
  }
  if (!health_.ok()) return done(health_);
  if (const Saga* s = FindActive(saga_id)) {
    return done(Status::InvalidArgument(
        "saga " + saga_id + " is " + std::string(SagaStateName(s->state)) +
        ", not parked; only parked sagas replay"));
  }
  auto found = std::make_shared<Result<SagaRecord>>(Status::NotFound(""));
  ++blocking_work_;
  RunBlocking(
      loop_, [this, saga_id, found] { *found = store_->GetSaga(saga_id); },
      [this, saga_id, from_step, found, done] {
        --blocking_work_;
        StartReplay(std::move(*found), from_step, 0, done);
        MaybeFinishShutdown();
      });
}

void EngineImpl::QueueRedrive(const std::string& saga_id, const Wait& wait) {
  if (shutting_down_ || !options_.run_sagas) return;
  if (wait.due_ms > Now() + options_.timer_window_ms) return;
  if (!redrives_.insert(saga_id).second) return;
  timers_->Add({wait.due_ms, saga_id, "redrive"});
}

void EngineImpl::Redrive(const TimerQueue::Entry& e) {
  redrives_.erase(e.saga_id);
  if (shutting_down_ || !health_.ok()) return;  // the row stays: next start
  auto found = std::make_shared<Result<SagaRecord>>(Status::NotFound(""));
  ++blocking_work_;
  RunBlocking(
      loop_, [this, e, found] { *found = store_->GetSaga(e.saga_id); },
      [this, e, found] {
        --blocking_work_;
        StartReplay(
            std::move(*found), "", e.due_ms,
            [id = e.saga_id](Result<SagaState> r) {
              if (r.ok()) return;
              Log(LogLevel::kError, "engine", "automatic replay failed",
                  {.saga_id = id, .extra = {{"error", r.status().ToString()}}});
            });
        MaybeFinishShutdown();
      });
}

void EngineImpl::StartReplay(Result<SagaRecord> found,
                             const std::string& from_step,
                             int64_t redrive_due_ms,
                             const Callback<SagaState>& done) {
  if (!found.ok()) return done(found.status());
  if (redrive_due_ms != 0 && active_.count(found->id) != 0) {
    return done(SagaState::kRunning);  // replayed by hand meanwhile: stale
  }
  if (shutting_down_) {
    return done(Status::ShutdownInProgress("the engine is shutting down"));
  }
  if (active_.count(found->id) != 0) {
    return done(Status::Busy("saga " + found->id + " is already replaying"));
  }
  if (purging_.count(found->id) != 0) {
    return done(Status::Busy("saga " + found->id + " is being purged"));
  }
  auto saga = FromRecord(*found);
  if (!saga.ok()) return done(saga.status());
  if (redrive_due_ms != 0 && (saga->state != SagaState::kParked ||
                              saga->wait.kind != Wait::Kind::kRedrive ||
                              saga->wait.due_ms != redrive_due_ms)) {
    return done(SagaState::kParked);  // replayed or purged meanwhile: stale
  }
  DefPtr def = FindDefinition(saga->workflow, saga->version);
  if (!def) {
    return done(Status::NotFound("workflow " + saga->workflow + "@" +
                                 std::to_string(saga->version) +
                                 " is not registered"));
  }
  auto active = std::make_unique<Active>();
  active->saga = std::move(saga).value();
  active->def = def;
  Active& a = *active;
  auto plan = PlanReplay(Context(a), a.saga, from_step, redrive_due_ms != 0);
  if (!plan.ok()) return done(plan.status());
  const std::string id = a.saga.id;
  ++running_[def->name];
  a.holds_slot = true;
  active_[id] = std::move(active);
  Apply(a, std::move(plan).value(), [this, id, done](const Status& s) {
    if (!s.ok()) return done(s);
    const Saga* saga = FindActive(id);
    done(saga ? saga->state : SagaState::kCompleted);
  });
}

void EngineImpl::PurgeDlq(const std::string& saga_id,
                          Callback<DlqRecord> done) {
  if (shutting_down_) {
    return done(Status::ShutdownInProgress("the engine is shutting down"));
  }
  if (!health_.ok()) return done(health_);
  if (const Saga* s = FindActive(saga_id)) {
    return done(Status::InvalidArgument(
        "saga " + saga_id + " is " + std::string(SagaStateName(s->state)) +
        ", not parked; only parked sagas are purged"));
  }
  if (!purging_.insert(saga_id).second) {
    return done(Status::Busy("saga " + saga_id + " is being purged"));
  }
  struct Read {
    Result<SagaRecord> saga = Status::NotFound("");
    Result<DlqRecord> dlq = Status::NotFound("");
    bool owns_key = false;
  };
  auto read = std::make_shared<Read>();
  ++blocking_work_;
  RunBlocking(
      loop_,
      [this, saga_id, read] {
        read->saga = store_->GetSaga(saga_id);
        if (!read->saga.ok()) return;
        read->dlq = store_->GetDlq(saga_id);
        // The key's row goes only if it names this saga.
        if (!read->saga->idempotency_key.empty()) {
          auto owner = store_->LookupIdempotency(read->saga->idempotency_key);
          read->owns_key = owner.ok() && *owner == saga_id;
        }
      },
      [this, saga_id, read, done] {
        --blocking_work_;
        auto fail = [&](Status s) {
          purging_.erase(saga_id);
          done(std::move(s));
          MaybeFinishShutdown();
        };
        if (!read->saga.ok()) return fail(read->saga.status());
        const SagaRecord& rec = *read->saga;
        if (active_.count(saga_id) != 0 || rec.state != SagaState::kParked) {
          const std::string state = active_.count(saga_id) != 0
                                        ? "replaying"
                                        : std::string(SagaStateName(rec.state));
          return fail(Status::InvalidArgument(
              "saga " + saga_id + " is " + state +
              ", not parked; only parked sagas are purged"));
        }
        if (shutting_down_) {
          return fail(
              Status::ShutdownInProgress("the engine is shutting down"));
        }
        // A parked saga's DLQ entry; a parked saga without one (a damaged
        // store) is purged all the same.
        DlqRecord entry;
        if (read->dlq.ok()) {
          entry = *read->dlq;
        } else {
          entry.saga_id = saga_id;
          entry.workflow = rec.workflow;
          entry.version = rec.version;
        }
        const int64_t now = Now();
        Transition t;
        t.DeleteSaga(rec);
        t.DeleteDlq(saga_id);
        if (read->owns_key) t.DeleteIdempotency(rec.idempotency_key);
        // A timer its body still names (an automatic replay) goes too.
        if (auto saga = FromRecord(rec);
            saga.ok() && !TimerNameOf(saga->wait.kind).empty()) {
          t.DeleteTimer(saga->wait.due_ms, saga_id,
                        std::string(TimerNameOf(saga->wait.kind)));
        }
        t.PutAudit("dlq_purge", saga_id,
                   {{"action", "dlq_purge"},
                    {"saga_id", saga_id},
                    {"workflow", rec.workflow},
                    {"version", rec.version},
                    {"created_ms", rec.created_ms},
                    {"last_seq", rec.last_seq},
                    {"idempotency_key", rec.idempotency_key},
                    {"dlq",
                     {{"reason", entry.reason},
                      {"step", entry.step},
                      {"last_error", entry.last_error},
                      {"attempts", entry.attempts},
                      {"parked_ms", entry.parked_ms},
                      {"replay_count", entry.replay_count}}},
                    {"purged_ms", now}});
        const bool had_entry = read->dlq.ok();
        Commit(std::move(t),
               [this, saga_id, entry, had_entry, done](const Status& s) {
                 purging_.erase(saga_id);
                 if (!s.ok()) {
                   health_ = s;
                   done(s);
                 } else {
                   if (had_entry) m_.dlq_entries->Add(-1);
                   done(entry);
                 }
                 MaybeFinishShutdown();
               });
      });
}

bool EngineImpl::BeyondWindow(const Wait& wait) const {
  return (wait.kind == Wait::Kind::kSleep ||
          wait.kind == Wait::Kind::kBackoff) &&
         wait.due_ms > Now() + options_.timer_window_ms;
}

EngineImpl::Active* EngineImpl::Adopt(Saga saga) {
  if (active_.count(saga.id) != 0 || saga.state != SagaState::kRunning ||
      (saga.wait.kind != Wait::Kind::kSleep &&
       saga.wait.kind != Wait::Kind::kBackoff)) {
    return nullptr;
  }
  DefPtr def = FindDefinition(saga.workflow, saga.version);
  if (!def) return nullptr;
  auto active = std::make_unique<Active>();
  active->saga = std::move(saga);
  active->def = std::move(def);
  active->holds_slot = true;  // it kept its slot while dormant
  Active* a = active.get();
  active_[a->saga.id] = std::move(active);
  if (!options_.run_sagas) return a;  // maintenance: no timers
  timers_->Add({a->saga.wait.due_ms, a->saga.id,
                a->saga.wait.kind == Wait::Kind::kSleep ? "sleep" : "backoff"});
  return a;
}

void EngineImpl::OnLoadTimers(uv_timer_t* handle) {
  static_cast<EngineImpl*>(handle->data)->LoadDueDormant();
}

void EngineImpl::LoadDueDormant() {
  if (loading_dormant_ || shutting_down_ || !health_.ok() ||
      !options_.run_sagas) {
    return;
  }
  loading_dormant_ = true;
  const int64_t horizon = Now() + options_.timer_window_ms;
  // The timer rows due within the window, then (second trip off the loop)
  // the snapshots of the sagas among them that are not in memory.
  auto timers = std::make_shared<Result<std::vector<TimerRecord>>>(
      std::vector<TimerRecord>());
  ++blocking_work_;
  RunBlocking(
      loop_,
      [this, horizon, timers] {
        *timers = store_->DueTimers(horizon, 1'000'000);
      },
      [this, timers] {
        --blocking_work_;
        std::vector<std::string> missing;
        if (timers->ok()) {
          for (const TimerRecord& t : **timers) {
            if (t.name == "redrive") {
              QueueRedrive(t.saga_id,
                           {Wait::Kind::kRedrive, -1, false, 0, t.due_ms});
            } else if (active_.count(t.saga_id) == 0) {
              missing.push_back(t.saga_id);
            }
          }
        }
        if (missing.empty() || shutting_down_) {
          loading_dormant_ = false;
          return MaybeFinishShutdown();
        }
        auto sagas = std::make_shared<std::vector<Saga>>();
        ++blocking_work_;
        RunBlocking(
            loop_,
            [this, missing, sagas] {
              for (const std::string& id : missing) {
                auto rec = store_->GetSaga(id);
                if (!rec.ok()) continue;
                auto saga = FromRecord(*rec);
                if (saga.ok()) sagas->push_back(std::move(saga).value());
              }
            },
            [this, sagas] {
              --blocking_work_;
              loading_dormant_ = false;
              if (!shutting_down_) {
                for (Saga& saga : *sagas) Adopt(std::move(saga));
              }
              MaybeFinishShutdown();
            });
      });
}

void EngineImpl::ReadSaga(const std::string& saga_id,
                          Callback<SagaRecord> done) {
  if (const Saga* s = FindActive(saga_id)) return done(ToRecord(*s));
  auto found = std::make_shared<Result<SagaRecord>>(Status::NotFound(""));
  ++blocking_work_;
  RunBlocking(
      loop_, [this, saga_id, found] { *found = store_->GetSaga(saga_id); },
      [this, found, done] {
        --blocking_work_;
        done(std::move(*found));
        MaybeFinishShutdown();
      });
}

void EngineImpl::ReadStore(std::function<void(Store&)> read,
                           std::function<void()> done) {
  ++blocking_work_;
  RunBlocking(
      loop_, [this, read] { read(*store_); },
      [this, done] {
        --blocking_work_;
        done();
        MaybeFinishShutdown();
      });
}

const Saga* EngineImpl::FindActive(const std::string& saga_id) const {
  auto it = active_.find(saga_id);
  return it == active_.end() ? nullptr : &it->second->saga;
}

uint64_t EngineImpl::Watch(const std::string& saga_id,
                           std::function<void(const Saga&)> on_change) {
  const uint64_t id = next_watch_++;
  watchers_[saga_id][id] = std::move(on_change);
  watch_index_[id] = saga_id;
  return id;
}

void EngineImpl::Unwatch(uint64_t watch_id) {
  auto it = watch_index_.find(watch_id);
  if (it == watch_index_.end()) return;
  auto w = watchers_.find(it->second);
  if (w != watchers_.end()) {
    w->second.erase(watch_id);
    if (w->second.empty()) watchers_.erase(w);
  }
  watch_index_.erase(it);
}

EngineStats EngineImpl::stats() const {
  EngineStats s;
  for (const auto& [id, a] : active_) {
    ++s.active_by_state[std::string(SagaStateName(a->saga.state))];
    if (!a->gate.empty()) ++s.waiting_at_gates;
  }
  s.breakers = breakers_.List(static_cast<int64_t>(uv_now(loop_)));
  s.attempts_in_flight = attempts_in_flight_;
  s.timers_pending = timers_->size();
  for (const auto& [wf, q] : queued_) s.queued += q.size();
  const CommitWriterStats w = writer_->stats();
  s.commits = w.transitions;
  s.commit_groups = w.groups;
  return s;
}

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
        {"checkpoint",
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
               LogSagaEvent(saga, "checkpoint", data);
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
  http_->Close(closed);
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
