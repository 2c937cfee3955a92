// replay_saga of a parked saga.
#include <algorithm>

#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

Result<Plan> PlanReplay(const PlanContext& ctx, const Saga& saga,
                        const std::string& from_step, bool automatic,
                        std::string by) {
  if (saga.state != SagaState::kParked) {
    return Status::InvalidArgument("saga " + saga.id + " is " +
                                   std::string(SagaStateName(saga.state)) +
                                   ", not parked; only parked sagas replay");
  }
  Plan p = ti::From(saga);
  p.dlq_delete = true;
  if (const Wait* redrive = FindWait(saga, "");
      redrive != nullptr && redrive->kind == Wait::Kind::kRedrive) {
    // Whoever replays first, the automatic redrive is spent.
    p.timers_delete.push_back(TimerOf(*redrive));
  }
  p.saga.waits.clear();
  const char* trigger = automatic ? "auto" : "manual";
  p.saga.replay_count += 1;
  // The last replay's: an automatic one was asked by no one.
  p.saga.replayed_by = automatic ? "" : by;
  auto with_by = [&](EventData data) {
    if (!automatic && !by.empty()) data.Set("by", by);
    return data;
  };
  StepState* failed_comp = nullptr;
  for (StepState& st : p.saga.steps) {
    if (st.compensation == CompensationStatus::kFailed) failed_comp = &st;
  }
  if (StepState* in_item = ti::FindFailedItemCompensation(ctx, p)) {
    failed_comp = in_item;
  }
  if (failed_comp != nullptr) {
    if (!from_step.empty()) {
      return Status::InvalidArgument(
          "saga " + saga.id +
          " was parked by a failed compensation; it "
          "replays that compensation and takes no from_step");
    }
    // Retry the compensation with a fresh budget (its attempt numbers go
    // on: new idempotency keys).
    failed_comp->compensation = CompensationStatus::kNone;
    failed_comp->compensation_attempts_base =
        failed_comp->compensation_attempts;
    failed_comp->compensation_error = {};
    p.saga.state = saga.cancel_requested ? SagaState::kCancelling
                                         : SagaState::kCompensating;
    p.events.push_back({EventKind::kReplayed,
                        with_by(EventData()
                                    .Set("compensation", true)
                                    .Set("replay_count", p.saga.replay_count)
                                    .Set("trigger", trigger))});
    ti::Advance(ctx, p);
    return p;
  }
  // Only what did not finish runs again: the failed step, steps stopped
  // beside it, and what comes after; with from_step, also that top-level
  // step and everything after it.
  size_t from = p.saga.steps.size();
  std::string from_path;
  if (!from_step.empty()) {
    const int index = ctx.def.StepIndex(from_step);
    if (index < 0) {
      return Status::InvalidArgument("workflow " + saga.workflow + "@" +
                                     std::to_string(saga.version) +
                                     " has no step '" + from_step + "'");
    }
    if (ctx.def.steps[static_cast<size_t>(index)].parent >= 0) {
      return Status::InvalidArgument(
          "from_step '" + from_step +
          "' is inside a parallel or map step; a replay starts from a "
          "top-level step, or (without from_step) re-runs only what did not "
          "finish");
    }
    from = static_cast<size_t>(index);
    from_path = from_step;
  } else if (saga.failed_step >= 0) {
    from_path = ti::PathOf(ctx.def, {saga.failed_step, -1});
  } else {
    from_path = ti::PathOf(ctx.def, {ctx.def.sequence.front(), -1});
  }
  // A map step keeps its progress: only its items that did not finish run
  // again (unless it is at or after from_step).
  ti::ReplayMaps(ctx, p, static_cast<int>(from));
  for (size_t i = 0; i < p.saga.steps.size(); ++i) {
    if (ctx.def.steps[i].kind == StepKind::kMap ||
        ctx.def.steps[i].in_map >= 0) {
      continue;
    }
    if (i >= from || p.saga.steps[i].status != StepStatus::kSucceeded) {
      p.saga.steps[i] = ti::Rerun(p.saga.steps[i]);
    }
  }
  p.saga.state = SagaState::kRunning;
  p.saga.failure = {};
  p.saga.failed_step = -1;
  p.events.push_back({EventKind::kReplayed,
                      with_by(EventData()
                                  .Set("from_step", from_path)
                                  .Set("replay_count", p.saga.replay_count)
                                  .Set("trigger", trigger))});
  ti::Advance(ctx, p);
  return p;
}

}  // namespace cde
