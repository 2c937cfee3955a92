// Shared steps of the saga state machine, used by the per-event units in
// this folder (start.cc, attempt_result.cc, timer_fired.cc, cancel.cc,
// replay.cc, map.cc). Private to engine/.
//
// A step is named by its instance (StepInstance): the step, and inside a map
// step the item it runs for. A step outside map steps keeps its state in the
// saga; one inside keeps it in its item's state, read from the committed
// items (PlanContext::items) or this plan's own changes (Plan::items).
#ifndef CDE_ENGINE_TRANSITIONS_PROGRESS_H_
#define CDE_ENGINE_TRANSITIONS_PROGRESS_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/transitions.h"

namespace cde::transitions_internal {

using At = StepInstance;

// Error kinds that no retry can fix: the params could not be rendered, or
// the action does not exist in this process.
bool IsAlwaysPermanent(const std::string& kind);
// The path of an instance (InstancePath), and the instance at `path`
// (step -1 if none).
std::string PathOf(const WorkflowDefinition& def, const At& at);
At StepAt(const WorkflowDefinition& def, const std::string& path);
const StepSpec& Spec(const WorkflowDefinition& def, int step);
// The action spec of a step, or of its compensation.
const ActionSpec& SpecOf(const WorkflowDefinition& def, int step,
                         bool compensation);
// {"step", "compensation", "attempt"}: how events name an attempt.
EventData StepRef(const WorkflowDefinition& def, const At& at,
                  bool compensation, uint32_t attempt);

// The state of an instance, and the same to change (an item's is copied
// into the plan first, and marked touched).
const StepState& StateOf(const PlanContext& ctx, const Plan& p, const At& at);
StepState& MutableState(const PlanContext& ctx, Plan& p, const At& at);
// An item's state (nullptr if it never started), and the same to change
// (created pending, with a state per step of the map, if it never started;
// it and the items it runs in are marked touched).
const ItemState* FindItem(const PlanContext& ctx, const Plan& p,
                          const ItemRef& ref);
ItemState& MutableItem(const PlanContext& ctx, Plan& p, const ItemRef& ref);
// The item an instance inside a map step runs for, and the instance of
// `step` (inside the item's map step) for item `ref`.
ItemRef ItemOf(const PlanContext& ctx, const At& at);
At StepOfItem(const ItemRef& ref, int step);
// Items and rendered items as this plan sees them, for templates.
ItemSource SourceOf(const PlanContext& ctx, const Plan& p);

// Sets the saga's wait on `w.path`, replacing the one it had there.
void SetWait(Saga& saga, Wait w);
// The saga no longer waits on `path`.
void ClearWait(Saga& saga, const std::string& path);
// A plan that starts from `saga`'s current snapshot.
Plan From(const Saga& saga);
// Ends the saga in `state` (terminal or parked) with `event`.
void Finish(const PlanContext& ctx, Plan& p, SagaState state, EventKind event,
            EventData data);
// Parks the saga in the DLQ; `step` is the one that failed (step -1: none).
void Park(const PlanContext& ctx, Plan& p, DlqReason why, const At& step,
          const ErrorInfo& error, uint32_t attempts);
// Decides what comes next once something the saga waited for is over: the
// steps that can start now (one per branch, or item, that has nothing in
// flight), the compensations that can, or the end. A saga asked to cancel
// starts nothing new, and begins its cancel once nothing is in flight.
void Advance(const PlanContext& ctx, Plan& p);
// Forward through `seq`, run as `in` runs (the item and enclosing items
// of At::item and At::outer; At::step is not read): starts the first step
// not yet done, unless it is under way. True once every step of `seq` has
// succeeded.
bool RunSequence(const PlanContext& ctx, Plan& p, const std::vector<int>& seq,
                 const At& in);
// Backward through `seq`: starts the compensation of the newest step that
// needs one, unless one is under way. True once nothing is left to undo.
bool UndoSequence(const PlanContext& ctx, Plan& p, const std::vector<int>& seq,
                  const At& in);
// Whether the saga is compensating (after a failure, or a cancel).
bool Undoing(SagaState state);
// Starts the next attempt of a step or of its compensation.
void StartAttempt(const PlanContext& ctx, Plan& p, const At& step,
                  bool compensation);
// The step (or compensation) succeeded.
void Succeed(const PlanContext& ctx, Plan& p, const At& step, bool compensation,
             uint32_t attempt, nlohmann::json output);
// Acts on a cancel that waited for the saga to be idle.
void BeginCancel(const PlanContext& ctx, Plan& p);
// Cuts the backoff or sleep `w` waits for: its timer row goes, and its step
// ends (a backoff's step failed, a sleep's was cancelled).
void CutTimer(const PlanContext& ctx, Plan& p, const Wait& w);
// Stops every step still under way other than `failed` whose path starts
// with `prefix` ("" = all): a backoff or sleep is cut; an attempt in flight
// is marked stopped (Wait::stopped): its result is awaited but moves
// nothing forward, and its step's undo waits for it. Each logs step_stopped
// with `reason`.
void StopOthers(const PlanContext& ctx, Plan& p, const At& failed,
                const std::string& prefix, const std::string& reason);
// The state a step runs again from after a replay: anew, but its attempt
// numbers go on (StepState::attempts_base).
StepState Rerun(const StepState& st);
// The step (or compensation) failed for good.
void FailPermanently(const PlanContext& ctx, Plan& p, const At& step,
                     bool compensation, const ErrorInfo& error);
// The parallel steps that hold `failed` (up to its map step, if in one)
// failed with it.
void FailEnclosing(const PlanContext& ctx, Plan& p, const At& failed);

// Map steps (map.cc). `map` is a map step's instance: inside another map
// step's steps, one runs per item of it.
// Forward: starts the map (its items counted), advances the items that
// changed, starts items while there is room. True once it succeeded.
bool RunMap(const PlanContext& ctx, Plan& p, const At& map);
// Backward: undoes its items, newest first, max_concurrency at a time. True
// once nothing is left to undo.
bool UndoMap(const PlanContext& ctx, Plan& p, const At& map);
// A step of an item failed for good: the item fails; past the tolerated
// failures the map step fails too.
void FailItem(const PlanContext& ctx, Plan& p, const At& at,
              const ErrorInfo& error);
// An item that was going forward stops: `status` is failed or cancelled
// (and so do the map steps running in it, and their items).
void EndItem(const PlanContext& ctx, Plan& p, const ItemRef& ref,
             StepStatus status);
// The saga stops going forward: each running map step ends `status`
// (cancelled), and so do its running items.
void EndMaps(const PlanContext& ctx, Plan& p, StepStatus status);
// A parked saga is replayed: the items of its unfinished map steps that
// failed or were stopped run again; what succeeded stays. Map steps at or
// after step `from` run again whole.
void ReplayMaps(const PlanContext& ctx, Plan& p, int from);
// Whether a step inside map step `map` (nested ones included) has a
// compensation.
bool MapHasCompensations(const WorkflowDefinition& def, int map);
// A failed compensation among the items (nullptr if none), to retry.
StepState* FindFailedItemCompensation(const PlanContext& ctx, Plan& p);

}  // namespace cde::transitions_internal

#endif  // CDE_ENGINE_TRANSITIONS_PROGRESS_H_
