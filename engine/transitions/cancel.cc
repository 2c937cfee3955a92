// cancel_saga: stop after the current attempt, then compensate or not.
#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
using transitions_internal::Advance;
using transitions_internal::BeginCancel;
using transitions_internal::FailPermanently;
using transitions_internal::Finish;
using transitions_internal::From;
using transitions_internal::IsAlwaysPermanent;
using transitions_internal::SpecOf;
using transitions_internal::StartAttempt;
using transitions_internal::StepRef;
using transitions_internal::Succeed;

Status CheckCancellable(const Saga& saga) {
  const std::string state(SagaStateName(saga.state));
  if (IsTerminal(saga.state)) {
    return Status::InvalidArgument("saga " + saga.id + " is already " + state +
                                   "; only running sagas can be cancelled");
  }
  if (saga.state == SagaState::kParked) {
    return Status::InvalidArgument("saga " + saga.id +
                                   " is parked in the DLQ; replay or purge it");
  }
  if (saga.state != SagaState::kRunning || saga.cancel_requested) {
    return Status::InvalidArgument(
        "saga " + saga.id + " is already " +
        (saga.cancel_requested ? "being cancelled" : state));
  }
  return Status::OK();
}

Result<Plan> PlanCancel(const PlanContext& ctx, const Saga& saga,
                        bool compensate) {
  CDE_RETURN_IF_ERROR(CheckCancellable(saga));
  Plan p = From(saga);
  p.saga.cancel_requested = true;
  p.saga.compensate_on_cancel = compensate;
  p.events.push_back({"cancel_requested", {{"compensate", compensate}}});
  const Wait w = saga.wait;
  switch (w.kind) {
    case Wait::Kind::kAttempt:
      return p;  // stop after the current attempt: its result decides
    case Wait::Kind::kBackoff:
    case Wait::Kind::kSleep:
      p.timers_delete.push_back(
          {w.due_ms, w.kind == Wait::Kind::kSleep ? "sleep" : "backoff"});
      p.saga.wait = {};
      if (w.kind == Wait::Kind::kBackoff) {
        // The retries are abandoned: the step failed.
        StepState& st = p.saga.steps[static_cast<size_t>(w.step)];
        st.status = StepStatus::kFailed;
        st.finished_ms = ctx.now_ms;
      }
      BeginCancel(ctx, p);
      return p;
    case Wait::Kind::kQueued:
    case Wait::Kind::kNothing:
      p.saga.wait = {};
      Finish(p, SagaState::kCancelled, "saga_cancelled",
             {{"compensated", false}});
      return p;
  }
  return p;
}

}  // namespace cde
