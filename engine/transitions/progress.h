// Shared steps of the saga state machine, used by the per-event units in
// this folder (start.cc, attempt_result.cc, timer_fired.cc, cancel.cc,
// replay.cc). Private to engine/.
#ifndef CDE_ENGINE_TRANSITIONS_PROGRESS_H_
#define CDE_ENGINE_TRANSITIONS_PROGRESS_H_

#include <nlohmann/json.hpp>
#include <string>

#include "engine/transitions.h"

namespace cde::transitions_internal {

// Error kinds that no retry can fix: the params could not be rendered, or
// the action does not exist in this process.
bool IsAlwaysPermanent(const std::string& kind);
// The path of step `step` (StepSpec::path), and the step at `path` (-1 if
// none).
const std::string& PathOf(const WorkflowDefinition& def, int step);
int StepAt(const WorkflowDefinition& def, const std::string& path);
// The action spec of a step, or of its compensation.
const ActionSpec& SpecOf(const WorkflowDefinition& def, int step,
                         bool compensation);
// {"step", "compensation", "attempt"}: how events name an attempt.
nlohmann::json StepRef(const WorkflowDefinition& def, int step,
                       bool compensation, uint32_t attempt);
// Sets the saga's wait on `w.path`, replacing the one it had there.
void SetWait(Saga& saga, Wait w);
// The saga no longer waits on `path`.
void ClearWait(Saga& saga, const std::string& path);
// A plan that starts from `saga`'s current snapshot.
Plan From(const Saga& saga);
// Ends the saga in `state` (terminal or parked) with `event`.
void Finish(Plan& p, SagaState state, EventKind event, nlohmann::json data);
// Parks the saga in the DLQ.
void Park(const PlanContext& ctx, Plan& p, DlqReason why, int step,
          const ErrorInfo& error, uint32_t attempts);
// Decides what comes next once something the saga waited for is over: the
// steps that can start now (one per branch that has nothing in flight), the
// compensations that can, or the end. A saga asked to cancel starts nothing
// new, and begins its cancel once nothing is in flight.
void Advance(const PlanContext& ctx, Plan& p);
// Starts the next attempt of a step or of its compensation.
void StartAttempt(const PlanContext& ctx, Plan& p, int step, bool compensation);
// The step (or compensation) succeeded.
void Succeed(const PlanContext& ctx, Plan& p, int step, bool compensation,
             uint32_t attempt, nlohmann::json output);
// Acts on a cancel that waited for the saga to be idle.
void BeginCancel(const PlanContext& ctx, Plan& p);
// Cuts the backoff or sleep `w` waits for: its timer row goes, and its step
// ends (a backoff's step failed, a sleep's was cancelled).
void CutTimer(const PlanContext& ctx, Plan& p, const Wait& w);
// Stops every step of the saga still under way, other than `failed`: an
// attempt in flight is abandoned (its outcome unknown), a backoff or sleep
// cut. Each logs step_stopped.
void StopOthers(const PlanContext& ctx, Plan& p, int failed);
// The step (or compensation) failed for good.
void FailPermanently(const PlanContext& ctx, Plan& p, int step,
                     bool compensation, const ErrorInfo& error);

}  // namespace cde::transitions_internal

#endif  // CDE_ENGINE_TRANSITIONS_PROGRESS_H_
