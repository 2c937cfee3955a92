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
  auto with_by = [&](json data) {
    if (!automatic && !by.empty()) data["by"] = by;
    return data;
  };
  auto failed_comp = std::find_if(
      p.saga.steps.begin(), p.saga.steps.end(), [](const StepState& st) {
        return st.compensation == CompensationStatus::kFailed;
      });
  if (failed_comp != p.saga.steps.end()) {
    if (!from_step.empty()) {
      return Status::InvalidArgument(
          "saga " + saga.id +
          " was parked by a failed compensation; it "
          "replays that compensation and takes no from_step");
    }
    // Retry the compensation with a fresh budget.
    failed_comp->compensation = CompensationStatus::kNone;
    failed_comp->compensation_attempts = 0;
    failed_comp->compensation_error = {};
    p.saga.state = saga.cancel_requested ? SagaState::kCancelling
                                         : SagaState::kCompensating;
    p.events.push_back(
        {EventKind::kReplayed, with_by({{"compensation", true},
                                        {"replay_count", p.saga.replay_count},
                                        {"trigger", trigger}})});
    ti::Advance(ctx, p);
    return p;
  }
  int from = saga.failed_step;
  if (!from_step.empty()) {
    from = ctx.def.StepIndex(from_step);
    if (from < 0) {
      return Status::InvalidArgument("workflow " + saga.workflow + "@" +
                                     std::to_string(saga.version) +
                                     " has no step '" + from_step + "'");
    }
  }
  if (from < 0) from = 0;
  for (size_t i = static_cast<size_t>(from); i < p.saga.steps.size(); ++i) {
    p.saga.steps[i] = StepState{};
  }
  p.saga.state = SagaState::kRunning;
  p.saga.failure = {};
  p.saga.failed_step = -1;
  p.events.push_back(
      {EventKind::kReplayed,
       with_by({{"from_step", ctx.def.steps[static_cast<size_t>(from)].name},
                {"replay_count", p.saga.replay_count},
                {"trigger", trigger}})});
  ti::Advance(ctx, p);
  return p;
}

}  // namespace cde
