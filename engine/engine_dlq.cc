// EngineImpl: the dead-letter queue. Replays (by an operator or by a
// workflow's dlq.auto_replay timer) and purges of parked sagas.
#include "engine/engine_impl.h"
#include "engine/log.h"

namespace cde {
namespace {

Status ShuttingDown() {
  return Status::ShutdownInProgress("the engine is shutting down");
}

}  // namespace

Status EngineImpl::RefuseDlqWork(const std::string& saga_id,
                                 std::string_view rule) const {
  if (shutting_down_) return ShuttingDown();
  if (!health_.ok()) return health_;
  if (const Saga* s = FindActive(saga_id)) {
    return Status::InvalidArgument("saga " + saga_id + " is " +
                                   std::string(SagaStateName(s->state)) +
                                   ", not parked; " + std::string(rule));
  }
  return Status::OK();
}

void EngineImpl::Replay(const std::string& saga_id,
                        const std::string& from_step, const std::string& by,
                        Callback<SagaState> done) {
  if (Status refused = RefuseDlqWork(saga_id, "only parked sagas replay");
      !refused.ok()) {
    return done(std::move(refused));
  }
  auto found = std::make_shared<Result<StoredSaga>>(Status::NotFound(""));
  OffLoop([this, saga_id, found] { *found = ReadStoredSaga(saga_id); },
          [this, saga_id, from_step, by, found, done] {
            StartReplay(std::move(*found), from_step, by, 0, done);
          });
}

void EngineImpl::QueueRedrive(const std::string& saga_id, int64_t due_ms) {
  if (shutting_down_ || !options_.run_sagas) return;
  if (dormancy_->BeyondWindow(due_ms)) return;  // a later scan brings it
  if (!redrives_.insert(saga_id).second) return;
  timers_->Add({due_ms, saga_id, TimerKind::kRedrive});
}

void EngineImpl::Redrive(const TimerQueue::Entry& e) {
  redrives_.erase(e.saga_id);
  if (shutting_down_ || !health_.ok()) return;  // the row stays: next start
  auto found = std::make_shared<Result<StoredSaga>>(Status::NotFound(""));
  OffLoop(
      [this, e, found] { *found = ReadStoredSaga(e.saga_id); },
      [this, e, found] {
        StartReplay(
            std::move(*found), "", "", e.due_ms,
            [id = e.saga_id](Result<SagaState> r) {
              if (r.ok()) return;
              Log(LogLevel::kError, "engine", "automatic replay failed",
                  {.saga_id = id, .extra = {{"error", r.status().ToString()}}});
            });
      });
}

Result<SagaRecord> EngineImpl::ReadSagaWithInput(const std::string& saga_id) {
  auto record = store_->GetSaga(saga_id);
  if (!record.ok()) return record;
  CDE_RETURN_IF_ERROR(LoadLoggedInput(*store_, *record));
  return record;
}

Result<EngineImpl::StoredSaga> EngineImpl::ReadStoredSaga(
    const std::string& saga_id) {
  auto record = ReadSagaWithInput(saga_id);
  if (!record.ok()) return record.status();
  auto items = store_->ReadItems(saga_id);
  if (!items.ok()) return items.status();
  return StoredSaga{std::move(record).value(), std::move(items).value()};
}

void EngineImpl::StartReplay(Result<StoredSaga> stored,
                             const std::string& from_step,
                             const std::string& by, int64_t redrive_due_ms,
                             const Callback<SagaState>& done) {
  if (!stored.ok()) return done(stored.status());
  const SagaRecord* found = &stored->record;
  if (redrive_due_ms != 0 && active_.count(found->id) != 0) {
    return done(SagaState::kRunning);  // replayed by hand meanwhile: stale
  }
  if (shutting_down_) return done(ShuttingDown());
  if (active_.count(found->id) != 0) {
    return done(Status::Busy("saga " + found->id + " is already replaying"));
  }
  if (purging_.count(found->id) != 0) {
    return done(Status::Busy("saga " + found->id + " is being purged"));
  }
  auto saga = FromRecord(*found);
  if (!saga.ok()) return done(saga.status());
  const Wait* redrive = FindWait(*saga, "");
  if (redrive_due_ms != 0 &&
      (saga->state != SagaState::kParked || redrive == nullptr ||
       redrive->kind != Wait::Kind::kRedrive ||
       redrive->due_ms != redrive_due_ms)) {
    return done(SagaState::kParked);  // replayed or purged meanwhile: stale
  }
  DefPtr def = definitions_.Find(saga->workflow, saga->version);
  if (!def) {
    return done(Status::NotFound("workflow " + saga->workflow + "@" +
                                 std::to_string(saga->version) +
                                 " is not registered"));
  }
  auto items = ItemTableFrom(*def, stored->items);
  if (!items.ok()) return done(items.status());
  auto active = std::make_unique<Active>();
  active->saga = std::move(saga).value();
  active->def = def;
  active->items = std::move(items).value();
  Active& a = *active;
  auto plan =
      PlanReplay(Context(a), a.saga, from_step, redrive_due_ms != 0, by);
  if (!plan.ok()) return done(plan.status());
  const std::string id = a.saga.id;
  slots_.Hold(def->name);
  a.holds_slot = true;
  active_[id] = std::move(active);
  Apply(a, std::move(plan).value(), [this, id, done](const Status& s) {
    if (!s.ok()) return done(s);
    const Saga* saga = FindActive(id);
    done(saga ? saga->state : SagaState::kCompleted);
  });
}

void EngineImpl::PurgeDlq(const std::string& saga_id, const std::string& by,
                          Callback<DlqRecord> done) {
  if (Status refused = RefuseDlqWork(saga_id, "only parked sagas are purged");
      !refused.ok()) {
    return done(std::move(refused));
  }
  if (!purging_.insert(saga_id).second) {
    return done(Status::Busy("saga " + saga_id + " is being purged"));
  }
  struct Read {
    Result<SagaRecord> saga = Status::NotFound("");
    Result<DlqRecord> dlq = Status::NotFound("");
    Result<std::vector<ItemRecord>> items = Status::NotFound("");
    bool owns_key = false;
  };
  auto read = std::make_shared<Read>();
  OffLoop(
      [this, saga_id, read] {
        read->saga = store_->GetSaga(saga_id);
        if (!read->saga.ok()) return;
        read->dlq = store_->GetDlq(saga_id);
        read->items = store_->ReadItems(saga_id);
        // The key's row goes only if it names this saga.
        if (!read->saga->idempotency_key.empty()) {
          auto owner = store_->LookupIdempotency(read->saga->idempotency_key);
          read->owns_key = owner.ok() && *owner == saga_id;
        }
      },
      [this, saga_id, by, read, done] {
        auto fail = [&](Status s) {
          purging_.erase(saga_id);
          done(std::move(s));
        };
        if (!read->saga.ok()) return fail(read->saga.status());
        if (!read->items.ok()) return fail(read->items.status());
        const SagaRecord& rec = *read->saga;
        if (active_.count(saga_id) != 0 || rec.state != SagaState::kParked) {
          const std::string state = active_.count(saga_id) != 0
                                        ? "replaying"
                                        : std::string(SagaStateName(rec.state));
          return fail(Status::InvalidArgument(
              "saga " + saga_id + " is " + state +
              ", not parked; only parked sagas are purged"));
        }
        if (shutting_down_) return fail(ShuttingDown());
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
        for (const ItemRecord& item : *read->items) {
          t.DeleteItem(saga_id, item.map_path, item.index);
        }
        t.DeleteDlq(saga_id);
        if (read->owns_key) t.DeleteIdempotency(rec.idempotency_key);
        // A timer its body still names (an automatic replay) goes too.
        if (auto saga = FromRecord(rec); saga.ok()) {
          for (const Wait& w : saga->waits) {
            if (auto kind = TimerKindOf(w.kind)) {
              t.DeleteTimer(w.due_ms, saga_id, TimerRowName(*kind, w.path));
            }
          }
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
                    {"purged_ms", now},
                    {"purged_by", by}});
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
               });
      });
}

}  // namespace cde
