// cancel_saga: stop after the attempts in flight, then compensate or not.
#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

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
                        bool compensate, std::string by) {
  CDE_RETURN_IF_ERROR(CheckCancellable(saga));
  Plan p = ti::From(saga);
  p.saga.cancel_requested = true;
  p.saga.compensate_on_cancel = compensate;
  EventData data;
  data.Set("compensate", compensate);
  if (!by.empty()) data.Set("by", by);
  p.saga.cancelled_by = std::move(by);
  p.events.push_back({EventKind::kCancelRequested, std::move(data)});
  if (const Wait* own = FindWait(saga, ""); own != nullptr) {
    // Queued for a slot: nothing ran, nothing to undo.
    p.saga.waits.clear();
    ti::Finish(ctx, p, SagaState::kCancelled, EventKind::kSagaCancelled,
               EventData().Set("compensated", false));
    return p;
  }
  // Attempts in flight finish first: their results decide what to undo.
  // Backoffs and sleeps are cut now.
  for (const Wait& w : saga.waits) {
    if (w.kind == Wait::Kind::kBackoff || w.kind == Wait::Kind::kSleep) {
      ti::CutTimer(ctx, p, w);
    }
  }
  ti::Advance(ctx, p);  // begins the cancel once nothing is in flight
  return p;
}

}  // namespace cde
