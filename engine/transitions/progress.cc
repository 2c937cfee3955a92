#include "engine/transitions/progress.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/action_policy.h"
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

std::string PathOf(const WorkflowDefinition& def, At at) {
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

json StepRef(const WorkflowDefinition& def, At at, bool compensation,
             uint32_t attempt) {
  // Built member by member: an initializer list copies each value twice,
  // and every transition logs one of these.
  json ref(json::value_t::object);
  auto& members = ref.get_ref<json::object_t&>();
  members.emplace("attempt", attempt);
  members.emplace("compensation", compensation);
  members.emplace("step", PathOf(def, at));
  return ref;
}

namespace {

// Where an item step's state sits in its item's list.
size_t ItemSlot(const PlanContext& ctx, At at) {
  return static_cast<size_t>(at.step - Spec(ctx.def, at.step).in_map - 1);
}

ItemRef ItemOf(const PlanContext& ctx, At at) {
  return {Spec(ctx.def, at.step).in_map, static_cast<uint32_t>(at.item)};
}

bool InItem(const PlanContext& ctx, At at) {
  return at.item >= 0 && Spec(ctx.def, at.step).in_map >= 0;
}

}  // namespace

const ItemState* FindItem(const PlanContext& ctx, const Plan& p, ItemRef ref) {
  if (auto it = p.items.find(ref); it != p.items.end()) {
    return &it->second.state;
  }
  if (ctx.items == nullptr) return nullptr;
  const auto map = ctx.items->find(ref.map);
  if (map == ctx.items->end() || ref.index >= map->second.size()) {
    return nullptr;
  }
  const ItemState& item = map->second[ref.index];
  return item.steps.empty() ? nullptr : &item;  // a gap: never started
}

ItemState& MutableItem(const PlanContext& ctx, Plan& p, ItemRef ref) {
  auto it = p.items.find(ref);
  if (it == p.items.end()) {
    ItemWrite write{Spec(ctx.def, ref.map).path, {}};
    if (const ItemState* committed = FindItem(ctx, p, ref)) {
      write.state = *committed;
    } else {
      write.state.steps.resize(
          static_cast<size_t>(Spec(ctx.def, ref.map).map.size));
    }
    it = p.items.emplace(ref, std::move(write)).first;
  }
  p.touched.push_back(ref);
  return it->second.state;
}

const StepState& StateOf(const PlanContext& ctx, const Plan& p, At at) {
  if (!InItem(ctx, at)) return p.saga.steps[static_cast<size_t>(at.step)];
  static const StepState kPending;
  const ItemState* item = FindItem(ctx, p, ItemOf(ctx, at));
  return item != nullptr ? item->steps[ItemSlot(ctx, at)] : kPending;
}

StepState& MutableState(const PlanContext& ctx, Plan& p, At at) {
  if (!InItem(ctx, at)) return p.saga.steps[static_cast<size_t>(at.step)];
  return MutableItem(ctx, p, ItemOf(ctx, at)).steps[ItemSlot(ctx, at)];
}

namespace {

// A sleep's duration, rendered from logged data like any params.
Result<int64_t> SleepDurationMs(const PlanContext& ctx, const Plan& p, At at,
                                const ActionSpec& spec, const json& attempt) {
  std::map<std::string, const json*> outputs;
  const ItemState* item =
      InItem(ctx, at) ? FindItem(ctx, p, ItemOf(ctx, at)) : nullptr;
  TemplateContext tc =
      MakeTemplateContext(ctx.def, p.saga, &outputs,
                          attempt.at("idempotency_key").get<std::string>(),
                          attempt.at("attempt").get<uint32_t>(), item,
                          Spec(ctx.def, at.step).in_map);
  json rendered_items;
  if (InItem(ctx, at)) {
    const int map = Spec(ctx.def, at.step).in_map;
    const json* items = ctx.map_items ? ctx.map_items(map) : nullptr;
    if (items == nullptr) {
      auto rendered = RenderMapItems(ctx.def, p.saga, map);
      if (!rendered.ok()) return rendered.status();
      rendered_items = std::move(rendered).value();
      items = &rendered_items;
    }
    if (static_cast<size_t>(at.item) >= items->size()) {
      return Status::InvalidArgument("map.items: no item " +
                                     std::to_string(at.item));
    }
    tc.item = &(*items)[static_cast<size_t>(at.item)];
    tc.index = at.item;
  }
  auto params = RenderTemplates(spec.params, tc);
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
            json data) {
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
    json stopped = StepRef(ctx.def, at, false, w.attempt);
    stopped["error"] = {{"kind", st.error.kind}, {"message", st.error.message}};
    stopped["stopped"] = true;
    p.events.push_back({EventKind::kStepFailed, std::move(stopped)});
  }
  p.saga.waits.clear();
  p.events.push_back({event, std::move(data)});
  p.actions.push_back({PlanAction::Kind::kFinish, {}, {}});
}

void Park(const PlanContext& ctx, Plan& p, DlqReason why, At step,
          const ErrorInfo& error, uint32_t attempts) {
  const std::string reason(DlqReasonName(why));
  const std::string step_name = step.step >= 0 ? PathOf(ctx.def, step) : "";
  p.dlq_put =
      DlqRecord{p.saga.id, p.saga.workflow, p.saga.version,
                reason,    step_name,       error.kind + ": " + error.message,
                attempts,  ctx.now_ms,      p.saga.replay_count};
  json data = {
      {"reason", reason}, {"step", step_name}, {"error", error.message}};
  const auto& redrive = ctx.def.auto_replay;
  const bool again = redrive && p.saga.replay_count < redrive->max_replays;
  if (again) data["auto_replay_ms"] = ctx.now_ms + redrive->after_ms;
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

void SucceedParallel(const PlanContext& ctx, Plan& p, At at) {
  const StepSpec& parallel = Spec(ctx.def, at.step);
  json output = json::object();
  for (const Branch& b : parallel.branches) {
    output[b.name] = StateOf(ctx, p, {b.steps.back(), at.item}).output;
  }
  StepState& st = MutableState(ctx, p, at);
  st.status = StepStatus::kSucceeded;
  st.finished_ms = ctx.now_ms;
  st.output = std::move(output);
  json data = StepRef(ctx.def, at, false, 0);
  data["output"] = st.output;
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
                 int64_t item) {
  for (const int i : seq) {
    const At at{i, item};
    const StepSpec& spec = Spec(ctx.def, i);
    if (StateOf(ctx, p, at).status == StepStatus::kSucceeded) continue;
    if (spec.kind == StepKind::kMap) {
      if (!RunMap(ctx, p, i)) return false;
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
        all = RunSequence(ctx, p, branch.steps, item) && all;
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
                  int64_t item) {
  for (auto it = seq.rbegin(); it != seq.rend(); ++it) {
    const int i = *it;
    const At at{i, item};
    const StepSpec& spec = Spec(ctx.def, i);
    if (spec.kind == StepKind::kMap) {
      if (!UndoMap(ctx, p, i)) return false;
      continue;
    }
    if (spec.kind == StepKind::kParallel) {
      bool all = true;
      for (const Branch& branch : spec.branches) {
        all = UndoSequence(ctx, p, branch.steps, item) && all;
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

void FailEnclosing(const PlanContext& ctx, Plan& p, At failed) {
  const ErrorInfo error = StateOf(ctx, p, failed).error;
  for (int at = Spec(ctx.def, failed.step).parent;
       at >= 0 && Spec(ctx.def, at).kind == StepKind::kParallel;
       at = Spec(ctx.def, at).parent) {
    const At parallel{at, Spec(ctx.def, at).in_map >= 0 ? failed.item : -1};
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
    if (RunSequence(ctx, p, ctx.def.sequence, -1) &&
        s.state == SagaState::kRunning) {
      Finish(ctx, p, SagaState::kCompleted, EventKind::kSagaCompleted,
             json::object());
    }
    return;
  }
  if (!Undoing(s.state)) return;
  if (!UndoSequence(ctx, p, ctx.def.sequence, -1) || !Undoing(s.state)) return;
  if (s.state == SagaState::kCancelling) {
    Finish(ctx, p, SagaState::kCancelled, EventKind::kSagaCancelled,
           {{"compensated", true}});
  } else {
    Finish(ctx, p, SagaState::kCompensated, EventKind::kSagaCompensated,
           json::object());
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

void StopOthers(const PlanContext& ctx, Plan& p, At failed,
                const std::string& prefix, const std::string& reason) {
  const std::vector<Wait> waits = p.saga.waits;
  for (const Wait& w : waits) {
    if (w.path.empty() || !w.path.starts_with(prefix)) continue;
    const At at = StepAt(ctx.def, w.path);
    if (at.step < 0 || at == failed) continue;
    json data = StepRef(ctx.def, at, w.compensation, w.attempt);
    data["reason"] = reason;
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
          data["in_flight"] = true;
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

void StartAttempt(const PlanContext& ctx, Plan& p, At at, bool compensation) {
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
  json data = StepRef(ctx.def, at, compensation, attempt);
  const AttemptRef ref{PathOf(ctx.def, at), compensation, attempt};
  data["idempotency_key"] =
      AttemptKey(p.saga.id, ref.path, compensation, attempt);
  Wait wait{Wait::Kind::kAttempt, ref.path, compensation, attempt, 0};
  if (spec.action == "sleep") {
    // The timer is durable: its due time is fixed now and logged.
    auto duration = SleepDurationMs(ctx, p, at, spec, data);
    if (!duration.ok()) {
      p.events.push_back({EventKind::kAttemptStarted, std::move(data)});
      FailPermanently(ctx, p, at, compensation,
                      {"template", duration.status().message()});
      return;
    }
    wait.kind = Wait::Kind::kSleep;
    wait.due_ms = ctx.now_ms + *duration;
    data["due_ms"] = wait.due_ms;
    p.timers_put.push_back(TimerOf(wait));
    p.actions.push_back({PlanAction::Kind::kArmTimer, ref, TimerOf(wait)});
  } else {
    p.actions.push_back({PlanAction::Kind::kRunAttempt, ref, {}});
  }
  SetWait(p.saga, std::move(wait));
  p.events.push_back({EventKind::kAttemptStarted, std::move(data)});
}

// The step (or compensation) succeeded.
void Succeed(const PlanContext& ctx, Plan& p, At at, bool compensation,
             uint32_t attempt, json output) {
  StepState& st = MutableState(ctx, p, at);
  st.finished_ms = ctx.now_ms;
  json data = StepRef(ctx.def, at, compensation, attempt);
  if (compensation) {
    st.compensation = CompensationStatus::kSucceeded;
    p.events.push_back({EventKind::kCompensationSucceeded, std::move(data)});
  } else {
    st.status = StepStatus::kSucceeded;
    st.error = {};
    data["output"] = output;
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
           {{"compensated", false}});
  }
}

void FailPermanently(const PlanContext& ctx, Plan& p, At at, bool compensation,
                     const ErrorInfo& error) {
  StepState& st = MutableState(ctx, p, at);
  st.finished_ms = ctx.now_ms;
  json data = StepRef(ctx.def, at, compensation,
                      compensation ? st.compensation_attempts : st.attempts);
  data["error"] = {{"kind", error.kind}, {"message", error.message}};
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
    p.events.push_back(
        {EventKind::kSagaCompensating, {{"step", PathOf(ctx.def, at)}}});
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
  p.saga = saga;
  p.previous_state = saga.state;
  return p;
}
}  // namespace transitions_internal

using nlohmann::json;

bool Plan::finishes() const {
  for (const PlanAction& a : actions) {
    if (a.kind == PlanAction::Kind::kFinish) return true;
  }
  return false;
}

TimerRef TimerOf(const Wait& wait) {
  return {wait.due_ms, TimerKindOf(wait.kind).value(), wait.path};
}

Transition Plan::Build(int64_t now_ms) {
  saga.updated_ms = now_ms;
  Transition t;
  for (PlannedEvent& e : events) {
    t.AppendLog({saga.id, ++saga.last_seq, now_ms,
                 std::string(EventKindName(e.kind)), std::move(e.data)});
  }
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
  t.PutSaga(HeadOf(saga), EncodeSnapshot(saga), previous_state);
  return t;
}

TemplateContext MakeTemplateContext(const WorkflowDefinition& def,
                                    const Saga& saga,
                                    std::map<std::string, const json*>* outputs,
                                    std::string idempotency_key,
                                    uint32_t attempt, const ItemState* item,
                                    int map) {
  for (size_t i = 0; i < saga.steps.size() && i < def.steps.size(); ++i) {
    if (saga.steps[i].status == StepStatus::kSucceeded &&
        def.steps[i].in_map < 0) {
      (*outputs)[def.steps[i].name] = &saga.steps[i].output;
    }
  }
  if (item != nullptr && map >= 0) {
    for (size_t k = 0; k < item->steps.size(); ++k) {
      if (item->steps[k].status == StepStatus::kSucceeded) {
        (*outputs)[def.steps[static_cast<size_t>(map) + 1 + k].name] =
            &item->steps[k].output;
      }
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

Result<json> RenderMapItems(const WorkflowDefinition& def, const Saga& saga,
                            int map) {
  std::map<std::string, const json*> outputs;
  TemplateContext tc = MakeTemplateContext(def, saga, &outputs, "", 0);
  const StepSpec& spec = def.steps[static_cast<size_t>(map)];
  auto items = RenderTemplates(spec.map.items, tc);
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
