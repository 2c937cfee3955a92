#include "engine/transitions/progress.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <span>

#include "engine/action_policy.h"
#include "engine/snapshot_patch.h"
#include "engine/templating.h"

namespace cde {
namespace transitions_internal {

using nlohmann::json;

bool IsAlwaysPermanent(const std::string& kind) {
  return kind == "template" || kind == "unknown_action" || kind == "params";
}

void SetWait(Saga& saga, Wait w) {
  ClearWait(saga, w.path);
  saga.waits.push_back(std::move(w));
}

void ClearWait(Saga& saga, const std::string& path) {
  std::erase_if(saga.waits, [&](const Wait& w) { return w.path == path; });
}

std::string PathOf(const WorkflowDefinition& def, const At& at) {
  return InstancePath(def, at);
}

At StepAt(const WorkflowDefinition& def, const std::string& path) {
  return InstanceAt(def, path);
}

const StepSpec& Spec(const WorkflowDefinition& def, int step) {
  return def.steps[static_cast<size_t>(step)];
}

const ActionSpec& SpecOf(const WorkflowDefinition& def, int step,
                         bool compensation) {
  const StepSpec& s = Spec(def, step);
  return compensation ? *s.compensate : s.run;
}

EventData StepRef(const WorkflowDefinition& def, const At& at,
                  bool compensation, uint32_t attempt) {
  EventData ref;
  ref.Set("attempt", attempt)
      .Set("compensation", compensation)
      .Set("step", PathOf(def, at));
  return ref;
}

namespace {

// Where an item step's state sits in its item's list.
size_t ItemSlot(const PlanContext& ctx, const At& at) {
  return static_cast<size_t>(at.step - Spec(ctx.def, at.step).in_map - 1);
}

bool InItem(const PlanContext& ctx, const At& at) {
  return at.item >= 0 && Spec(ctx.def, at.step).in_map >= 0;
}

}  // namespace

ItemRef ItemOf(const PlanContext& ctx, const At& at) {
  return {Spec(ctx.def, at.step).in_map, static_cast<uint32_t>(at.item),
          at.outer};
}

At StepOfItem(const ItemRef& ref, int step) {
  return {step, ref.index, ref.outer};
}

const ItemState* FindItem(const PlanContext& ctx, const Plan& p,
                          const ItemRef& ref) {
  if (auto it = p.items.find(ref); it != p.items.end()) {
    return &it->second.state;
  }
  return ctx.items == nullptr ? nullptr : FindItemIn(*ctx.items, ref);
}

ItemState& MutableItem(const PlanContext& ctx, Plan& p, const ItemRef& ref) {
  auto it = p.items.find(ref);
  if (it == p.items.end()) {
    ItemWrite write{PathOf(ctx.def, MapStepInstance(ref.instance())), {}};
    if (const ItemState* committed = FindItem(ctx, p, ref)) {
      write.state = *committed;
    } else {
      write.state.steps.resize(
          static_cast<size_t>(Spec(ctx.def, ref.map).map.size));
    }
    it = p.items.emplace(ref, std::move(write)).first;
  }
  // The items it runs in changed with it: their maps look at them again.
  ItemRef touched = ref;
  while (true) {
    p.touched.push_back(touched);
    if (touched.outer.empty()) break;
    touched = {Spec(ctx.def, touched.map).in_map,
               touched.outer.back(),
               {touched.outer.begin(), touched.outer.end() - 1}};
  }
  return it->second.state;
}

ItemSource SourceOf(const PlanContext& ctx, const Plan& p) {
  return {[&ctx, &p](const ItemRef& ref) { return FindItem(ctx, p, ref); },
          [&ctx](const MapInstance& map) -> const json* {
            return ctx.map_items ? ctx.map_items(map) : nullptr;
          }};
}

const StepState& StateOf(const PlanContext& ctx, const Plan& p, const At& at) {
  if (!InItem(ctx, at)) return p.saga.steps[static_cast<size_t>(at.step)];
  static const StepState kPending;
  const ItemState* item = FindItem(ctx, p, ItemOf(ctx, at));
  return item != nullptr ? item->steps[ItemSlot(ctx, at)] : kPending;
}

StepState& MutableState(const PlanContext& ctx, Plan& p, const At& at) {
  if (!InItem(ctx, at)) return p.saga.steps[static_cast<size_t>(at.step)];
  return MutableItem(ctx, p, ItemOf(ctx, at)).steps[ItemSlot(ctx, at)];
}

namespace {

// A sleep's duration, rendered from logged data like any params.
Result<int64_t> SleepDurationMs(const PlanContext& ctx, const Plan& p,
                                const At& at, const ActionSpec& spec,
                                std::string idempotency_key, uint32_t attempt) {
  TemplateScratch scratch;
  auto tc = TemplateContextAt(ctx.def, p.saga, at, SourceOf(ctx, p), &scratch,
                              std::move(idempotency_key), attempt);
  if (!tc.ok()) return tc.status();
  auto params = RenderTemplates(spec.params, *tc);
  if (!params.ok()) return params.status();
  const json& d =
      params->contains("duration_ms") ? params->at("duration_ms") : json(0);
  // Unsigned first: a parsed integer above INT64_MAX is unsigned.
  const bool in_range =
      d.is_number_unsigned() ? d.get<uint64_t>() <= kMaxDurationMs
      : d.is_number_integer()
          ? d.get<int64_t>() >= 0 && d.get<uint64_t>() <= kMaxDurationMs
          : false;
  if (!in_range) {
    return Status::InvalidArgument(
        "params.duration_ms: must be an integer from 0 to " +
        std::to_string(kMaxDurationMs) + ", got " + d.dump());
  }
  return d.get<int64_t>();
}

}  // namespace

void Finish(const PlanContext& ctx, Plan& p, SagaState state, EventKind event,
            EventData data) {
  p.saga.state = state;
  // An attempt stopped in flight whose result never came is abandoned with
  // the saga (kFinish aborts it): its outcome stays unknown.
  for (const Wait& w : p.saga.waits) {
    if (!w.stopped) continue;
    const At at = StepAt(ctx.def, w.path);
    if (at.step < 0) continue;
    StepState& st = MutableState(ctx, p, at);
    st.status = StepStatus::kCancelled;
    st.error = {kAbandonedErrorKind, "attempt " + std::to_string(w.attempt) +
                                         " abandoned in flight"};
    st.finished_ms = ctx.now_ms;
    // Its step_stopped said a result would follow: this is it.
    EventData stopped = StepRef(ctx.def, at, false, w.attempt);
    stopped.Set("error", st.error).Set("stopped", true);
    p.events.push_back({EventKind::kStepFailed, std::move(stopped)});
  }
  p.saga.waits.clear();
  p.events.push_back({event, std::move(data)});
  p.actions.push_back({PlanAction::Kind::kFinish, {}, {}});
}

void Park(const PlanContext& ctx, Plan& p, DlqReason why, const At& step,
          const ErrorInfo& error, uint32_t attempts) {
  const std::string reason(DlqReasonName(why));
  const std::string step_name = step.step >= 0 ? PathOf(ctx.def, step) : "";
  p.dlq_put =
      DlqRecord{p.saga.id, p.saga.workflow, p.saga.version,
                reason,    step_name,       error.kind + ": " + error.message,
                attempts,  ctx.now_ms,      p.saga.replay_count};
  EventData data;
  data.Set("reason", reason).Set("step", step_name).Set("error", error.message);
  const auto& redrive = ctx.def.auto_replay;
  const bool again = redrive && p.saga.replay_count < redrive->max_replays;
  if (again) data.Set("auto_replay_ms", ctx.now_ms + redrive->after_ms);
  Finish(ctx, p, SagaState::kParked, EventKind::kSagaParked, std::move(data));
  if (again) {
    // Durable like any timer: the engine replays it when the row falls due.
    const int64_t due = ctx.now_ms + redrive->after_ms;
    p.saga.waits.push_back({Wait::Kind::kRedrive, "", false, 0, due});
    p.timers_put.push_back({due, TimerKind::kRedrive, ""});
  }
}

bool Undoing(SagaState state) {
  return state == SagaState::kCompensating || state == SagaState::kCancelling;
}

namespace {

void SucceedParallel(const PlanContext& ctx, Plan& p, const At& at) {
  const StepSpec& parallel = Spec(ctx.def, at.step);
  json output = json::object();
  for (const Branch& b : parallel.branches) {
    output[b.name] =
        StateOf(ctx, p, {b.steps.back(), at.item, at.outer}).output;
  }
  StepState& st = MutableState(ctx, p, at);
  st.status = StepStatus::kSucceeded;
  st.finished_ms = ctx.now_ms;
  st.output = std::move(output);
  EventData data = StepRef(ctx.def, at, false, 0);
  data.Set("output", st.output);
  p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
}

// The parallel steps still running when the saga stops going forward were
// cut short (those that hold the failed step have failed already).
void CancelParallelSteps(const PlanContext& ctx, Plan& p) {
  for (size_t i = 0; i < ctx.def.steps.size(); ++i) {
    StepState& st = p.saga.steps[i];
    if (ctx.def.steps[i].kind == StepKind::kParallel &&
        ctx.def.steps[i].in_map < 0 && st.status == StepStatus::kRunning) {
      st.status = StepStatus::kCancelled;
      st.finished_ms = ctx.now_ms;
    }
  }
}

}  // namespace

bool RunSequence(const PlanContext& ctx, Plan& p, const std::vector<int>& seq,
                 const At& in) {
  for (const int i : seq) {
    const At at{i, in.item, in.outer};
    const StepSpec& spec = Spec(ctx.def, i);
    if (StateOf(ctx, p, at).status == StepStatus::kSucceeded) continue;
    if (spec.kind == StepKind::kMap) {
      if (!RunMap(ctx, p, at)) return false;
      continue;
    }
    if (spec.kind == StepKind::kParallel) {
      if (StateOf(ctx, p, at).status != StepStatus::kRunning) {
        StepState& st = MutableState(ctx, p, at);
        st.status = StepStatus::kRunning;
        if (st.started_ms == 0) st.started_ms = ctx.now_ms;
      }
      bool all = true;
      const SagaState state = p.saga.state;
      for (const Branch& branch : spec.branches) {
        all = RunSequence(ctx, p, branch.steps, in) && all;
        // A step that could not start failed for good: the saga (or the
        // item) moved on.
        if (p.saga.state != state ||
            StateOf(ctx, p, at).status != StepStatus::kRunning) {
          return false;
        }
      }
      if (!all) return false;
      SucceedParallel(ctx, p, at);
      continue;
    }
    if (FindWait(p.saga, PathOf(ctx.def, at)) != nullptr) return false;
    StartAttempt(ctx, p, at, false);
    return false;
  }
  return true;
}

bool UndoSequence(const PlanContext& ctx, Plan& p, const std::vector<int>& seq,
                  const At& in) {
  for (auto it = seq.rbegin(); it != seq.rend(); ++it) {
    const int i = *it;
    const At at{i, in.item, in.outer};
    const StepSpec& spec = Spec(ctx.def, i);
    if (spec.kind == StepKind::kMap) {
      if (!UndoMap(ctx, p, at)) return false;
      continue;
    }
    if (spec.kind == StepKind::kParallel) {
      bool all = true;
      for (const Branch& branch : spec.branches) {
        all = UndoSequence(ctx, p, branch.steps, in) && all;
        if (!Undoing(p.saga.state)) return false;  // parked
      }
      if (!all) return false;
      continue;
    }
    if (FindWait(p.saga, PathOf(ctx.def, at)) != nullptr) {
      return false;  // under way
    }
    const StepState& st = StateOf(ctx, p, at);
    if (st.compensation == CompensationStatus::kRunning) {
      StartAttempt(ctx, p, at, true);  // cut off by a park: a retry
      return false;
    }
    if (!NeedsCompensation(st)) continue;
    if (!spec.compensate) {
      MutableState(ctx, p, at).compensation = CompensationStatus::kNotDefined;
      continue;
    }
    StartAttempt(ctx, p, at, true);
    return false;
  }
  return true;
}

void FailEnclosing(const PlanContext& ctx, Plan& p, const At& failed) {
  const ErrorInfo error = StateOf(ctx, p, failed).error;
  for (int at = Spec(ctx.def, failed.step).parent;
       at >= 0 && Spec(ctx.def, at).kind == StepKind::kParallel;
       at = Spec(ctx.def, at).parent) {
    const At parallel = Spec(ctx.def, at).in_map >= 0
                            ? At{at, failed.item, failed.outer}
                            : At{at, -1, {}};
    if (StateOf(ctx, p, parallel).status != StepStatus::kRunning) continue;
    StepState& st = MutableState(ctx, p, parallel);
    st.status = StepStatus::kFailed;
    st.error = error;
    st.finished_ms = ctx.now_ms;
  }
}

void Advance(const PlanContext& ctx, Plan& p) {
  Saga& s = p.saga;
  if (s.state == SagaState::kRunning) {
    if (s.cancel_requested) {
      // What is in flight finishes first: its outcome decides what to undo.
      if (s.waits.empty()) BeginCancel(ctx, p);
      return;
    }
    if (RunSequence(ctx, p, ctx.def.sequence, {}) &&
        s.state == SagaState::kRunning) {
      Finish(ctx, p, SagaState::kCompleted, EventKind::kSagaCompleted, {});
    }
    return;
  }
  if (!Undoing(s.state)) return;
  if (!UndoSequence(ctx, p, ctx.def.sequence, {}) || !Undoing(s.state)) return;
  if (s.state == SagaState::kCancelling) {
    Finish(ctx, p, SagaState::kCancelled, EventKind::kSagaCancelled,
           EventData().Set("compensated", true));
  } else {
    Finish(ctx, p, SagaState::kCompensated, EventKind::kSagaCompensated, {});
  }
}

void CutTimer(const PlanContext& ctx, Plan& p, const Wait& w) {
  p.timers_delete.push_back(TimerOf(w));
  ClearWait(p.saga, w.path);
  const At at = StepAt(ctx.def, w.path);
  if (at.step < 0) return;
  // A backoff's retries are abandoned: the step failed (a timeout among its
  // attempts still calls for undoing it). A sleep is cut off: it never
  // finished, and there is nothing to undo.
  StepState& st = MutableState(ctx, p, at);
  st.status = w.kind == Wait::Kind::kBackoff ? StepStatus::kFailed
                                             : StepStatus::kCancelled;
  st.finished_ms = ctx.now_ms;
}

void StopOthers(const PlanContext& ctx, Plan& p, const At& failed,
                const std::string& prefix, const std::string& reason) {
  const std::vector<Wait> waits = p.saga.waits;
  for (const Wait& w : waits) {
    if (w.path.empty() || !w.path.starts_with(prefix)) continue;
    const At at = StepAt(ctx.def, w.path);
    if (at.step < 0 || at == failed) continue;
    EventData data = StepRef(ctx.def, at, w.compensation, w.attempt);
    data.Set("reason", reason);
    switch (w.kind) {
      case Wait::Kind::kAttempt: {
        StepState& st = MutableState(ctx, p, at);
        const AttemptRef ref{w.path, w.compensation, w.attempt};
        auto run = std::find_if(
            p.actions.begin(), p.actions.end(), [&](const PlanAction& a) {
              return a.kind == PlanAction::Kind::kRunAttempt &&
                     a.attempt == ref;
            });
        if (run != p.actions.end()) {
          // Started by this very plan: never dispatched, nothing to undo.
          p.actions.erase(run);
          st.status = StepStatus::kCancelled;
          st.finished_ms = ctx.now_ms;
          ClearWait(p.saga, w.path);
        } else if (!w.stopped) {
          // It may be on its way to the service: its result is awaited
          // (the engine drops it only if it still waits at a gate), and its
          // undo, if called for, waits for it.
          for (Wait& mine : p.saga.waits) {
            if (mine.path == w.path) mine.stopped = true;
          }
          data.Set("in_flight", true);
          p.actions.push_back({PlanAction::Kind::kStopAttempt, ref, {}});
        } else {
          continue;  // stopped already
        }
        break;
      }
      case Wait::Kind::kBackoff:
      case Wait::Kind::kSleep:
        CutTimer(ctx, p, w);
        break;
      case Wait::Kind::kNothing:
      case Wait::Kind::kQueued:
      case Wait::Kind::kRedrive:
        continue;
    }
    if (InItem(ctx, at)) {
      EndItem(ctx, p, ItemOf(ctx, at), StepStatus::kCancelled);
    }
    p.events.push_back({EventKind::kStepStopped, std::move(data)});
  }
}

void StartAttempt(const PlanContext& ctx, Plan& p, const At& at,
                  bool compensation) {
  StepState& st = MutableState(ctx, p, at);
  const uint32_t attempt =
      compensation ? ++st.compensation_attempts : ++st.attempts;
  if (compensation) {
    st.compensation = CompensationStatus::kRunning;
  } else {
    st.status = StepStatus::kRunning;
  }
  if (st.started_ms == 0) st.started_ms = ctx.now_ms;
  const ActionSpec& spec = SpecOf(ctx.def, at.step, compensation);
  EventData data = StepRef(ctx.def, at, compensation, attempt);
  const AttemptRef ref{PathOf(ctx.def, at), compensation, attempt};
  std::string key = AttemptKey(p.saga.id, ref.path, compensation, attempt);
  Wait wait{Wait::Kind::kAttempt, ref.path, compensation, attempt, 0};
  if (spec.action == "sleep") {
    // The timer is durable: its due time is fixed now and logged.
    auto duration = SleepDurationMs(ctx, p, at, spec, key, attempt);
    data.Set("idempotency_key", std::move(key));
    if (!duration.ok()) {
      p.events.push_back({EventKind::kAttemptStarted, std::move(data)});
      FailPermanently(ctx, p, at, compensation,
                      {"template", duration.status().message()});
      return;
    }
    wait.kind = Wait::Kind::kSleep;
    wait.due_ms = ctx.now_ms + *duration;
    data.Set("due_ms", wait.due_ms);
    p.timers_put.push_back(TimerOf(wait));
    p.actions.push_back({PlanAction::Kind::kArmTimer, ref, TimerOf(wait)});
  } else {
    data.Set("idempotency_key", std::move(key));
    p.actions.push_back({PlanAction::Kind::kRunAttempt, ref, {}});
  }
  SetWait(p.saga, std::move(wait));
  p.events.push_back({EventKind::kAttemptStarted, std::move(data)});
}

// The step (or compensation) succeeded.
void Succeed(const PlanContext& ctx, Plan& p, const At& at, bool compensation,
             uint32_t attempt, json output) {
  StepState& st = MutableState(ctx, p, at);
  st.finished_ms = ctx.now_ms;
  EventData data = StepRef(ctx.def, at, compensation, attempt);
  if (compensation) {
    st.compensation = CompensationStatus::kSucceeded;
    p.events.push_back({EventKind::kCompensationSucceeded, std::move(data)});
  } else {
    st.status = StepStatus::kSucceeded;
    st.error = {};
    data.Set("output", output);
    st.output = std::move(output);
    p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
  }
  ClearWait(p.saga, PathOf(ctx.def, at));
}

// A cancel was requested while the saga was busy; now it is not.
void BeginCancel(const PlanContext& ctx, Plan& p) {
  CancelParallelSteps(ctx, p);
  EndMaps(ctx, p, StepStatus::kCancelled);
  if (p.saga.compensate_on_cancel) {
    p.saga.state = SagaState::kCancelling;
    Advance(ctx, p);
  } else {
    Finish(ctx, p, SagaState::kCancelled, EventKind::kSagaCancelled,
           EventData().Set("compensated", false));
  }
}

void FailPermanently(const PlanContext& ctx, Plan& p, const At& at,
                     bool compensation, const ErrorInfo& error) {
  StepState& st = MutableState(ctx, p, at);
  st.finished_ms = ctx.now_ms;
  EventData data =
      StepRef(ctx.def, at, compensation,
              compensation ? st.compensation_attempts : st.attempts);
  data.Set("error", error);
  ClearWait(p.saga, PathOf(ctx.def, at));
  if (compensation) {
    st.compensation = CompensationStatus::kFailed;
    st.compensation_error = error;
    p.events.push_back({EventKind::kCompensationFailed, std::move(data)});
    Park(ctx, p, DlqReason::kCompensationFailed, at, error,
         st.compensation_attempts - st.compensation_attempts_base);
    return;
  }
  st.status = StepStatus::kFailed;
  st.error = error;
  const uint32_t attempts = st.attempts_this_run();
  p.events.push_back({EventKind::kStepFailed, std::move(data)});
  FailEnclosing(ctx, p, at);
  if (InItem(ctx, at)) return FailItem(ctx, p, at, error);
  p.saga.failure = error;
  p.saga.failed_step = at.step;
  if (p.saga.cancel_requested) {
    Advance(ctx, p);  // the cancel begins once nothing is in flight
    return;
  }
  StopOthers(ctx, p, at, "", "step " + PathOf(ctx.def, at) + " failed");
  CancelParallelSteps(ctx, p);
  EndMaps(ctx, p, StepStatus::kCancelled);
  if (ctx.def.on_failure == OnFailure::kPark) {
    Park(ctx, p, DlqReason::kStepFailed, at, error, attempts);
  } else {
    p.saga.state = SagaState::kCompensating;
    p.events.push_back({EventKind::kSagaCompensating,
                        EventData().Set("step", PathOf(ctx.def, at))});
    Advance(ctx, p);
  }
}

StepState Rerun(const StepState& st) {
  StepState again;
  again.attempts = again.attempts_base = st.attempts;
  again.compensation_attempts = again.compensation_attempts_base =
      st.compensation_attempts;
  return again;
}

Plan From(const Saga& saga) {
  Plan p;
  p.Reset(saga);
  return p;
}
}  // namespace transitions_internal

using nlohmann::json;

void Plan::Reset(const Saga& from) {
  // Every field of a Plan is reset here: one added must be too.
  static_assert(sizeof(Plan) == 936, "reset the new field of Plan here");
  saga = from;  // assigned, not constructed: into the strings it has
  items.clear();
  touched.clear();
  previous_state = from.state;
  events.clear();
  timers_put.clear();
  timers_delete.clear();
  dlq_put.reset();
  dlq_delete = false;
  put_idempotency = false;
  actions.clear();
  to_log.clear();
  wrote_snapshot = true;
  body.clear();
  body_layout.clear();
}

bool Plan::finishes() const {
  for (const PlanAction& a : actions) {
    if (a.kind == PlanAction::Kind::kFinish) return true;
  }
  return false;
}

TimerRef TimerOf(const Wait& wait) {
  return {wait.due_ms, TimerKindOf(wait.kind).value(), wait.path};
}

namespace {

// Fields of the snapshot's head a patch cannot change (only updated_ms and
// last_seq, which every transition moves).
bool SameHead(const Saga& a, const Saga& b) {
  return a.id == b.id && a.workflow == b.workflow && a.version == b.version &&
         a.state == b.state && a.created_ms == b.created_ms &&
         a.idempotency_key == b.idempotency_key;
}

struct PatchToWrite {
  const SnapshotPatch* patch;
  int64_t updated_ms;
};

}  // namespace

Transition Plan::Build(int64_t now_ms, Base base) {
  saga.updated_ms = now_ms;
  // One per thread, reused: its buffers keep their capacity.
  thread_local SnapshotPatch patch;
  bool patched = false;
  if (base.saga != nullptr) {
    body.clear();
    {
      CborWriter w(&body);
      WriteSnapshotBody(saga, w, &body_layout);
    }
    patched = !base.body->empty() && !events.empty() &&
              previous_state == saga.state && !finishes() &&
              SameHead(*base.saga, saga) &&
              patch.Make({*base.body, base.layout}, {body, &body_layout});
  }
  wrote_snapshot = !patched;
  const PatchToWrite to_write{&patch, now_ms};
  Transition t;
  // Most transitions are a snapshot and an event or two: one allocation.
  t.Reserve(1024 + 256 * events.size());
  // A transition logs an event or two: their list on the stack.
  std::array<Transition::LogEvent, 4> few;
  std::vector<Transition::LogEvent> many;
  std::span<Transition::LogEvent> logged(few.data(), events.size());
  if (events.size() > few.size()) {
    many.resize(events.size());
    logged = many;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    logged[i] = {EventKindName(events[i].kind), nullptr,
                 [](const void* data, CborWriter& w) {
                   static_cast<const EventData*>(data)->Write(w);
                 },
                 &events[i].data};
  }
  t.AppendLogEvents(
      saga.id, saga.last_seq + 1, now_ms, logged,
      patched ? [](const void* p, CborWriter& w) {
        const auto* to = static_cast<const PatchToWrite*>(p);
        to->patch->Write(w, to->updated_ms);
      } : LogRowWriter::WriteData{nullptr},
      &to_write);
  saga.last_seq += events.size();
  events.clear();
  // A timer both put and deleted by one plan was put and then cut (several
  // results in one plan), or cut and put again with the same due time: either
  // way the row ends as it began, so neither is written.
  auto in = [](const std::vector<TimerRef>& list, const TimerRef& timer) {
    return std::find(list.begin(), list.end(), timer) != list.end();
  };
  for (const TimerRef& timer : timers_delete) {
    if (in(timers_put, timer)) continue;
    t.DeleteTimer(timer.due_ms, saga.id, TimerRowName(timer.kind, timer.path));
  }
  for (const TimerRef& timer : timers_put) {
    if (in(timers_delete, timer)) continue;
    t.PutTimer({timer.due_ms, saga.id, TimerRowName(timer.kind, timer.path),
                json::object()});
  }
  if (dlq_put) t.PutDlq(*dlq_put);
  if (dlq_delete) t.DeleteDlq(saga.id);
  if (put_idempotency) t.PutIdempotency(saga.idempotency_key, saga.id);
  for (const auto& [ref, write] : items) {
    t.PutItem(saga.id, write.map_path, ref.index,
              EncodeItem(ItemToJson(write.state)));
  }
  if (base.saga != nullptr && !patched) {
    // Encoded already; the transitions after it may patch it.
    SagaHead head = HeadOf(saga);
    head.patchable = true;
    t.PutSaga(
        head, [this](CborWriter& w) { w.Raw(body); }, previous_state);
  } else if (!patched) {
    t.PutSaga(
        HeadOf(saga), [this](CborWriter& w) { WriteSnapshotBody(saga, w); },
        previous_state);
  }
  return t;
}

TemplateContext MakeTemplateContext(const WorkflowDefinition& def,
                                    const Saga& saga,
                                    std::map<std::string, const json*>* outputs,
                                    std::string idempotency_key,
                                    uint32_t attempt) {
  for (size_t i = 0; i < saga.steps.size() && i < def.steps.size(); ++i) {
    if (saga.steps[i].status == StepStatus::kSucceeded &&
        def.steps[i].in_map < 0) {
      (*outputs)[def.steps[i].name] = &saga.steps[i].output;
    }
  }
  TemplateContext tc;
  tc.input = &saga.input;
  tc.outputs = outputs;
  tc.saga_id = saga.id;
  tc.idempotency_key = std::move(idempotency_key);
  tc.attempt = attempt;
  return tc;
}

const ItemState* FindItemIn(const ItemTable& items, const ItemRef& ref) {
  const auto map = items.find(ref.instance());
  if (map == items.end() || ref.index >= map->second.size()) return nullptr;
  const ItemState& item = map->second[ref.index];
  return item.steps.empty() ? nullptr : &item;  // a gap: never started
}

const StepState* StepStateIn(const WorkflowDefinition& def, const Saga& saga,
                             const ItemTable& items, const StepInstance& at) {
  const int map = def.steps[static_cast<size_t>(at.step)].in_map;
  if (map < 0 || at.item < 0) {
    return static_cast<size_t>(at.step) < saga.steps.size()
               ? &saga.steps[static_cast<size_t>(at.step)]
               : nullptr;
  }
  const ItemState* item =
      FindItemIn(items, {map, static_cast<uint32_t>(at.item), at.outer});
  const auto slot = static_cast<size_t>(at.step - map - 1);
  return item != nullptr && slot < item->steps.size() ? &item->steps[slot]
                                                      : nullptr;
}

StepInstance MapStepInstance(const MapInstance& map) {
  if (map.outer.empty()) return {map.map, -1, {}};
  return {map.map, map.outer.back(), {map.outer.begin(), map.outer.end() - 1}};
}

MapInstance MapInstanceOf(const StepInstance& at) {
  MapInstance mi{at.step, at.outer};
  if (at.item >= 0) mi.outer.push_back(static_cast<uint32_t>(at.item));
  return mi;
}

Result<TemplateContext> TemplateContextAt(
    const WorkflowDefinition& def, const Saga& saga, const StepInstance& at,
    const ItemSource& source, TemplateScratch* scratch,
    std::string idempotency_key, uint32_t attempt) {
  TemplateContext tc = MakeTemplateContext(def, saga, &scratch->outputs,
                                           std::move(idempotency_key), attempt);
  if (at.item < 0) return tc;
  const std::vector<int> maps = EnclosingMaps(def, at.step);
  if (maps.size() != at.outer.size() + 1) {
    return Status::InvalidArgument(
        "step " + def.steps[static_cast<size_t>(at.step)].path +
        ": not one index per enclosing map step");
  }
  // The steps of each item it runs in, outermost first.
  MapInstance inner;
  for (size_t k = 0; k < maps.size(); ++k) {
    const uint32_t index =
        k < at.outer.size() ? at.outer[k] : static_cast<uint32_t>(at.item);
    inner = {
        maps[k],
        {at.outer.begin(), at.outer.begin() + static_cast<std::ptrdiff_t>(k)}};
    const ItemState* item =
        source.item ? source.item({maps[k], index, inner.outer}) : nullptr;
    if (item == nullptr) continue;
    for (size_t j = 0; j < item->steps.size(); ++j) {
      if (item->steps[j].status == StepStatus::kSucceeded) {
        scratch->outputs[def.steps[static_cast<size_t>(maps[k]) + 1 + j].name] =
            &item->steps[j].output;
      }
    }
  }
  const json* items = source.items ? source.items(inner) : nullptr;
  if (items == nullptr) {
    auto rendered = RenderMapItems(def, saga, inner, source);
    if (!rendered.ok()) return rendered.status();
    items = &scratch->rendered.emplace_back(std::move(rendered).value());
  }
  if (static_cast<size_t>(at.item) >= items->size()) {
    return Status::InvalidArgument("map.items: no item " +
                                   std::to_string(at.item));
  }
  tc.item = &(*items)[static_cast<size_t>(at.item)];
  tc.index = at.item;
  return tc;
}

Result<json> RenderMapItems(const WorkflowDefinition& def, const Saga& saga,
                            const MapInstance& map, const ItemSource& source) {
  TemplateScratch scratch;
  auto tc = TemplateContextAt(def, saga, MapStepInstance(map), source, &scratch,
                              "", 0);
  if (!tc.ok()) return tc.status();
  const StepSpec& spec = def.steps[static_cast<size_t>(map.map)];
  auto items = RenderTemplates(spec.map.items, *tc);
  if (!items.ok()) {
    // "params: ..." is where RenderTemplates says it was; here it is items.
    std::string message = items.status().message();
    if (message.starts_with("params")) message.replace(0, 6, "map.items");
    return Status::InvalidArgument(message);
  }
  if (!items->is_array()) {
    return Status::InvalidArgument(
        "map.items: must give an array, got " +
        std::string(items->is_object() ? "an object" : items->type_name()));
  }
  return items;
}

int64_t BackoffMs(const RetryPolicy& policy, uint32_t next_attempt,
                  double jitter_sample) {
  const double base =
      static_cast<double>(policy.initial_backoff_ms) *
      std::pow(policy.multiplier, static_cast<double>(next_attempt - 2));
  const double capped =
      std::min(base, static_cast<double>(policy.max_backoff_ms));
  const double spread = capped * policy.jitter * (2 * jitter_sample - 1);
  return std::max<int64_t>(0, std::llround(capped + spread));
}

bool IsNonRetryable(const RetryPolicy& policy, const std::string& kind) {
  // The same params would be refused again, whatever the retry policy says.
  if (kind == kPolicyErrorKind || kind == kLimitErrorKind) return true;
  for (const std::string& pattern : policy.non_retryable) {
    if (ErrorKindMatches(pattern, kind)) return true;
  }
  return false;
}

}  // namespace cde
