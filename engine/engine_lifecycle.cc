// EngineImpl: recovery on open, concurrency slots, waking dormant sagas, reads,
// watches and stats.
#include <algorithm>

#include "engine/engine_impl.h"
#include "engine/log.h"
#include "engine/store_upgrade.h"

namespace cde {

Status EngineImpl::Recover() {
  if (store_->format_version() < kFormatVersion) {
    auto upgraded = UpgradeStore(*store_);
    CDE_RETURN_IF_ERROR(upgraded.status());
    Log(LogLevel::kInfo, "engine", "store upgraded",
        {.extra = {{"from_format", upgraded->from},
                   {"to_format", kFormatVersion},
                   {"sagas_rewritten", upgraded->rewritten},
                   {"sagas_undecodable", upgraded->left_as_is},
                   {"retired_index_rows", upgraded->retired_index_rows}}});
  }
  auto defs = store_->ListDefinitions();
  if (!defs.ok()) return defs.status().WithContext("loading definitions");
  for (const DefinitionRecord& d : *defs)
    CDE_RETURN_IF_ERROR(definitions_.Load(d));
  // The DLQ gauge starts from the store's count (a scan of the DLQ, once per
  // open), then follows parks and replays.
  auto parked = store_->CountDlq();
  if (!parked.ok()) return parked.status().WithContext("counting the DLQ");
  m_.dlq_entries->Set(static_cast<double>(*parked));

  auto active_sagas = store_->ListActiveSagas();
  if (!active_sagas.ok()) {
    return active_sagas.status().WithContext("loading sagas");
  }
  std::vector<SagaRecord>& records = active_sagas->sagas;
  // Every active saga, the unreadable too: parking one counts it out.
  m_.sagas_in_flight->Set(
      static_cast<double>(records.size() + active_sagas->unreadable.size()));
  // One saga whose rows do not read is set aside, not a reason to stay down.
  for (const UnreadableSaga& u : active_sagas->unreadable) {
    ParkPoisoned(UnreadableRecord(u), u.error.message());
  }
  // Oldest first, so queued sagas keep their order.
  std::sort(
      records.begin(), records.end(),
      [](const SagaRecord& a, const SagaRecord& b) { return a.id < b.id; });
  std::vector<Active*> resumed;
  for (SagaRecord& record : records) {
    DefPtr def = definitions_.Find(record.workflow, record.version);
    const Status loaded = LoadLoggedInput(*store_, record);
    if (!loaded.ok() && !loaded.IsCorruption()) {
      return loaded.WithContext("loading sagas");
    }
    auto saga = loaded.ok() ? FromRecord(record) : Result<Saga>(loaded);
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
    ItemTable items;
    if (poison.empty() &&
        std::any_of(saga->steps.begin(), saga->steps.end(),
                    [](const StepState& st) { return st.map.began; })) {
      auto rows = store_->ReadItems(record.id);
      if (!rows.ok()) return rows.status().WithContext("loading map items");
      auto table = ItemTableFrom(*def, *rows);
      if (table.ok()) {
        items = std::move(table).value();
      } else {
        poison = table.status().message();
      }
    }
    if (!poison.empty()) {
      ParkPoisoned(std::move(record), poison);
      continue;
    }
    if (dormancy_->MayLeaveMemory(*saga)) {
      // Dormant: holds its slot, stays on disk until its timer is near.
      slots_.Hold(def->name);
      continue;
    }
    auto active = std::make_unique<Active>();
    active->saga = std::move(saga).value();
    active->def = def;
    active->items = std::move(items);
    if (const Wait* own = FindWait(active->saga, "");
        own != nullptr && own->kind == Wait::Kind::kQueued) {
      slots_.Wait(def->name, active->saga.id);
    } else {
      slots_.Hold(def->name);
      active->holds_slot = true;
    }
    resumed.push_back(active.get());
    active_[record.id] = std::move(active);
  }
  // Attempts a graceful shutdown cut off go first: they were running.
  std::stable_partition(resumed.begin(), resumed.end(),
                        [](const Active* a) { return a->saga.checkpointed; });
  for (Active* a : resumed) Resume(*a);
  for (const std::string& workflow : slots_.Waiting()) FillSlots(workflow);
  // Automatic replays due soon, and dormant sagas: not a window later.
  dormancy_->Scan();
  return Status::OK();
}

// Picks an active saga up where its snapshot says it was.
void EngineImpl::Resume(Active& a) {
  // Maintenance: the saga stays as its snapshot says; a server picks it up.
  if (!options_.run_sagas) return;
  if (a.saga.waits.empty()) {
    // Between two events when it stopped: it goes on from where it was.
    Apply(a, PlanDequeue(Context(a), a.saga), nullptr);
    return;
  }
  // Copies: a dispatch may change the waits.
  const std::vector<Wait> waits = a.saga.waits;
  for (const Wait& w : waits) {
    switch (w.kind) {
      case Wait::Kind::kAttempt:
        // Started, result never logged: run it again, same idempotency key.
        // One stopped before the engine stopped is sent again all the
        // same: the service's answer (its dedup by key) says whether the
        // effect happened, and no undo overtakes a request still on its
        // way. Dispatch arms its deadline (stopped_attempt_wait_ms).
        Dispatch(a, {w.path, w.compensation, w.attempt}, /*resumed=*/true);
        break;
      case Wait::Kind::kBackoff:
      case Wait::Kind::kSleep:
        timers_->Add({w.due_ms, a.saga.id, TimerOf(w).kind, w.path});
        break;
      case Wait::Kind::kQueued:   // FillSlots decides
      case Wait::Kind::kRedrive:  // parked: never active
      case Wait::Kind::kNothing:  // never stored
        break;
    }
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
               std::string(EventKindName(EventKind::kSagaPoisoned)),
               {{"error", reason}}});
  t.PutDlq({record.id, record.workflow, record.version,
            std::string(DlqReasonName(DlqReason::kPoison)), "", reason, 0,
            Now(), 0});
  record.last_seq += 1;
  record.state = SagaState::kParked;
  record.updated_ms = Now();
  record.patchable = false;  // whole, and nothing follows it
  t.PutSaga(record, previous);
  Commit(std::move(t), [this, id = record.id, wf = record.workflow,
                        reason](const Status& s) {
    if (!s.ok()) health_ = s;
    if (s.ok()) {
      ObservePoisoned(wf);
      Log(LogLevel::kError, "engine", EventKindName(EventKind::kSagaPoisoned),
          {.saga_id = id, .workflow = wf, .extra = {{"error", reason}}});
    }
  });
}

void EngineImpl::ForgetStaleTimers(std::vector<TimerRecord> rows) {
  // A scan may find many (up to its limit of rows): a commit of a few
  // hundred kilobytes at most.
  constexpr size_t kRowsPerCommit = 4096;
  for (size_t from = 0; from < rows.size(); from += kRowsPerCommit) {
    const size_t to = std::min(rows.size(), from + kRowsPerCommit);
    Transition t;
    for (size_t i = from; i < to; ++i) {
      t.DeleteTimer(rows[i].due_ms, rows[i].saga_id, rows[i].name);
    }
    Commit(std::move(t), [this, n = to - from](const Status& s) {
      if (!s.ok()) {
        health_ = s;
        return;
      }
      Log(LogLevel::kInfo, "engine", "stale timer rows deleted",
          {.extra = {{"rows", n}}});
    });
  }
}

void EngineImpl::FillSlots(const std::string& workflow) {
  if (shutting_down_ || !options_.run_sagas) return;
  while (const std::string* front = slots_.Front(workflow)) {
    auto it = active_.find(*front);
    if (it == active_.end()) {
      slots_.DropFront(workflow);
      continue;
    }
    if (!slots_.PromoteFront(workflow, ConcurrencyLimit(*it->second->def))) {
      return;
    }
    it->second->holds_slot = true;
    const std::string next = it->first;
    WhenIdle(*it->second, [this, next] {
      auto it = active_.find(next);
      if (it == active_.end()) return;
      Active& n = *it->second;
      const Wait* own = FindWait(n.saga, "");
      if (own == nullptr || own->kind != Wait::Kind::kQueued) return;
      Apply(n, PlanDequeue(Context(n), n.saga), nullptr);
    });
  }
}

EngineImpl::Active* EngineImpl::Adopt(Saga saga) {
  // Any active state: a compensating or cancelling saga waits on the
  // backoffs of its undos as a running one waits on its steps'.
  if (active_.count(saga.id) != 0 || !IsActive(saga.state) ||
      saga.waits.empty() || !HasInput(saga)) {
    return nullptr;
  }
  for (const Wait& w : saga.waits) {
    if (w.kind != Wait::Kind::kSleep && w.kind != Wait::Kind::kBackoff) {
      return nullptr;  // not dormant: only sagas waiting on timers are
    }
  }
  DefPtr def = definitions_.Find(saga.workflow, saga.version);
  if (!def) return nullptr;
  auto active = std::make_unique<Active>();
  active->saga = std::move(saga);
  active->def = std::move(def);
  active->holds_slot = true;  // it kept its slot while dormant
  Active* a = active.get();
  active_[a->saga.id] = std::move(active);
  if (!options_.run_sagas) return a;  // maintenance: no timers
  for (const Wait& w : a->saga.waits) {
    timers_->Add({w.due_ms, a->saga.id, TimerOf(w).kind, w.path});
  }
  return a;
}

void EngineImpl::ReadSaga(const std::string& saga_id,
                          Callback<SagaRecord> done) {
  if (const Saga* s = FindActive(saga_id)) return done(ToRecordWithInput(*s));
  auto found = std::make_shared<Result<SagaRecord>>(Status::NotFound(""));
  OffLoop([this, saga_id, found] { *found = ReadSagaWithInput(saga_id); },
          [found, done] { done(std::move(*found)); });
}

void EngineImpl::ReadStore(std::function<void(Store&)> read,
                           std::function<void()> done) {
  OffLoop([this, read] { read(*store_); }, [done] { done(); });
}

const Saga* EngineImpl::FindActive(const std::string& saga_id) const {
  auto it = active_.find(saga_id);
  return it == active_.end() ? nullptr : &it->second->saga;
}

uint64_t EngineImpl::Watch(const std::string& saga_id,
                           std::function<void(const Saga&)> on_change) {
  return watchers_.WatchSaga(saga_id, std::move(on_change));
}

uint64_t EngineImpl::WatchDefinitions(
    std::function<void(const DefinitionRecord&)> on_registered) {
  return watchers_.WatchDefinitions(std::move(on_registered));
}

void EngineImpl::Unwatch(uint64_t watch_id) { watchers_.Unwatch(watch_id); }

EngineStats EngineImpl::stats() const {
  EngineStats s;
  for (const auto& [id, a] : active_) {
    ++s.active_by_state[std::string(SagaStateName(a->saga.state))];
    for (const auto& [path, attempt] : a->attempts) {
      if (!attempt.gate.empty()) ++s.waiting_at_gates;
    }
  }
  s.breakers = gates_.Breakers();
  s.attempts_in_flight = attempts_.count();
  s.work_in_flight = work_.count();
  s.timers_pending = timers_->size();
  s.queued = slots_.waiting_count();
  const CommitWriterStats w = writer_->stats();
  s.commits = w.transitions;
  s.commit_groups = w.groups;
  s.commit_groups_gathered = w.gathered;
  s.commit_early_writes = w.early_writes;
  s.commit_early_write_cpu_ns = w.early_write_cpu_ns;
  s.commit_early_write_cpu_transitions = w.early_write_cpu_transitions;
  s.commit_first_return_ns = w.first_return_ns;
  s.commit_first_returns = w.first_returns;
  s.commit_all_return_ns = w.all_return_ns;
  s.commit_all_returns = w.all_returns;
  s.commit_tell_ns = w.tell_ns;
  s.commit_gather_ns = w.gather_ns;
  s.commit_write_ns = w.write_ns;
  s.commit_bytes = w.bytes;
  return s;
}

}  // namespace cde
