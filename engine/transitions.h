// The saga state machine as pure functions: (definition, saga, event) ->
// Plan. A Plan is the new snapshot, the log events that explain it, the
// timer/DLQ/idempotency rows to write with it, and what to do once it is
// committed. No I/O happens here: the engine commits a plan's transition and
// only then acts on it ("log, commit, then act"), and tests check plans
// directly.
#ifndef CDE_ENGINE_TRANSITIONS_H_
#define CDE_ENGINE_TRANSITIONS_H_

#include <functional>
#include <list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/definition.h"
#include "engine/event_data.h"
#include "engine/kinds.h"
#include "engine/saga.h"
#include "engine/templating.h"
#include "storage/records.h"
#include "storage/transition.h"

namespace cde {

struct PlannedEvent {
  EventKind kind;
  EventData data;
};

struct TimerRef {
  int64_t due_ms = 0;
  TimerKind kind = TimerKind::kBackoff;
  std::string path;  // the step it belongs to; "" for the saga's own
  friend bool operator==(const TimerRef&, const TimerRef&) = default;
};
// The timer `wait` (of a kind that has one: backoff, sleep, redrive) waits
// for.
TimerRef TimerOf(const Wait& wait);

// What the engine does once a plan has committed, in order.
struct PlanAction {
  enum class Kind {
    kRunAttempt,   // dispatch `attempt`
    kArmTimer,     // queue `timer`, a backoff or a sleep of `attempt`'s step
    kStopAttempt,  // `attempt` was stopped: dropped if it still waits at a
                   // gate (its outcome: never ran), else left to finish
    kFinish,       // the saga is terminal or parked: it leaves memory
  };
  Kind kind;
  AttemptRef attempt;  // kRunAttempt, kArmTimer, kStopAttempt
  TimerRef timer{};    // kArmTimer
  friend bool operator==(const PlanAction&, const PlanAction&) = default;
};

// An item row to write with a plan.
struct ItemWrite {
  std::string map_path;
  ItemState state;
  friend bool operator==(const ItemWrite&, const ItemWrite&) = default;
};

// What a transition may write a patch of its snapshot against (see
// Plan::Build).
struct SnapshotBase {
  const Saga* saga = nullptr;
  const std::string* body = nullptr;  // empty: not known
  const BodyLayout* layout = nullptr;
};

struct Plan {
  Saga saga;  // the snapshot after this transition
  // The items of map steps this transition changes (their new states), by
  // item: each a row of its own, so that a map's transition writes what
  // changed, not every item.
  std::map<ItemRef, ItemWrite> items;
  // Items whose state changed since the planner last looked at them
  // (private to the planner).
  std::vector<ItemRef> touched;
  std::optional<SagaState> previous_state;  // nullopt for a new saga
  std::vector<PlannedEvent> events;
  std::vector<TimerRef> timers_put;
  std::vector<TimerRef> timers_delete;
  std::optional<DlqRecord> dlq_put;
  bool dlq_delete = false;
  bool put_idempotency = false;  // saga.idempotency_key -> saga.id

  // What to do once committed.
  std::vector<PlanAction> actions;
  // Makes this the empty plan of a transition of `from`, as a fresh plan
  // would be, keeping the storage of what it held (its buffers and
  // strings): a plan reused for the next transition (of any saga) copies
  // the saga into memory it already has.
  void Reset(const Saga& from);
  // Whether the saga ends here (a kFinish action).
  bool finishes() const;
  // The events to write log lines about once committed (Build moves
  // `events` into the transition); filled by the engine.
  std::vector<PlannedEvent> to_log;

  // The storage transition for this plan; assigns log seqs from
  // saga.last_seq (which it advances).
  //
  // With a base (the saga as its last commit left it, and its snapshot body
  // as encoded then: Plan::body of that commit's plan, or empty if not
  // known), a transition that keeps the saga's state and has events writes
  // a patch of the snapshot in its log row instead of the snapshot, when
  // the patch is smaller (store format 8; SnapshotPatch). Build then keeps
  // the new snapshot body in `body`, the base of the next transition.
  using Base = SnapshotBase;
  Transition Build(int64_t now_ms, Base base = {});
  // Set by Build: whether the transition holds the whole snapshot, and
  // (given a base) the snapshot body encoded.
  bool wrote_snapshot = true;
  std::string body;
  BodyLayout body_layout;
};

// What the engine knows when it plans.
struct PlanContext {
  const WorkflowDefinition& def;
  int64_t now_ms;
  double jitter_sample = 0.5;  // uniform in [0, 1): chosen by the caller
  // A fresh sample per retry, when set (several results in one plan must
  // not retry at the same instant); else jitter_sample.
  std::function<double()> jitter;
  // The saga's map items as committed (null: none have started); a plan's
  // own changes are in Plan::items.
  const ItemTable* items = nullptr;
  // The items of a map instance, rendered (null: the planner renders them
  // itself); the engine keeps them rendered once per map instance.
  std::function<const nlohmann::json*(const MapInstance&)> map_items;
  uint32_t max_map_items = 10000;  // limits.map_items
  // limits.output_bytes: also what a map step's output (all its items'
  // outputs) may hold, since the snapshot keeps it.
  uint64_t max_output_bytes = uint64_t{256} << 10;
};

// The outcome of one attempt, tagged with the attempt it belongs to.
struct AttemptOutcome {
  AttemptRef ref;
  bool ok = false;
  nlohmann::json output;  // ok only
  ErrorInfo error;        // !ok only
};

// A new saga. With `queued`, it waits for a slot (max_concurrency) instead of
// starting its first step. `correlation_id` and `trace_id` ("" = none) are
// kept in the snapshot and logged with saga_started.
Plan PlanStart(const PlanContext& ctx, std::string saga_id,
               nlohmann::json input, std::string idempotency_key,
               std::string correlation_id, std::string trace_id,
               std::string started_by, bool queued);

// A queued saga got its slot.
Plan PlanDequeue(const PlanContext& ctx, const Saga& saga);

// The result of an attempt; nullopt if it is stale (not an attempt the saga
// waits for, by path and attempt: it timed out, or the saga moved on).
std::optional<Plan> PlanAttemptResult(const PlanContext& ctx, const Saga& saga,
                                      const AttemptOutcome& outcome);

// The results of several attempts, in order, as one plan: what arrived
// while the saga's previous transition committed. (*applied)[i] says
// whether outcomes[i] was planned (false: stale, or the saga ended before
// it). nullopt if none was.
std::optional<Plan> PlanAttemptResults(
    const PlanContext& ctx, const Saga& saga,
    const std::vector<AttemptOutcome>& outcomes, std::vector<bool>* applied);
// The same plan made in `*out` (Plan::Reset first: whatever it held is
// replaced); false if none was, and then *out holds nothing of use.
bool PlanAttemptResultsInto(const PlanContext& ctx, const Saga& saga,
                            const std::vector<AttemptOutcome>& outcomes,
                            std::vector<bool>* applied, Plan* out);

// A durable timer fell due; nullopt if the saga does not wait for it.
std::optional<Plan> PlanTimerFired(const PlanContext& ctx, const Saga& saga,
                                   const TimerRef& timer);

// OK if `saga` can be cancelled; otherwise InvalidArgument saying why.
Status CheckCancellable(const Saga& saga);

// cancel_saga, asked by `by` (a token's name, "local"; "" = not recorded).
// InvalidArgument for a terminal, parked, compensating or already
// cancelling saga.
Result<Plan> PlanCancel(const PlanContext& ctx, const Saga& saga,
                        bool compensate, std::string by = "");

// replay_saga of a parked saga: from the failed step (or `from_step`) with a
// fresh retry budget, or, if a compensation failed, retrying compensation.
// `automatic`: the dlq.auto_replay timer, not an operator, replays it;
// otherwise `by` asked for it. Either way a pending automatic replay is
// cancelled.
Result<Plan> PlanReplay(const PlanContext& ctx, const Saga& saga,
                        const std::string& from_step, bool automatic = false,
                        std::string by = "");

// The template context of an attempt of `saga` outside map steps: its
// input, the outputs of its steps that ran (succeeded, or since
// compensated) (filled into `outputs`, which must outlive the context, as
// `saga` must), its id and the attempt's key.
TemplateContext MakeTemplateContext(
    const WorkflowDefinition& def, const Saga& saga,
    std::map<std::string, const nlohmann::json*>* outputs,
    std::string idempotency_key, uint32_t attempt);

// Where templates inside map steps find what they read: an item's state
// (nullptr if it never started), and a map instance's items as rendered
// before (nullptr: rendered again, from what they read).
struct ItemSource {
  std::function<const ItemState*(const ItemRef&)> item;
  std::function<const nlohmann::json*(const MapInstance&)> items;
};

// What a template context points into, beside the saga: it must outlive
// the context.
struct TemplateScratch {
  std::map<std::string, const nlohmann::json*> outputs;
  std::list<nlohmann::json> rendered;  // items rendered on the way
};

// The template context of step instance `at` (MakeTemplateContext's, and
// inside map steps also the outputs of the steps of each item it runs in,
// and ${item} and ${index} of the innermost one), or InvalidArgument if
// the items of a map it runs in cannot be rendered or lack its item.
Result<TemplateContext> TemplateContextAt(
    const WorkflowDefinition& def, const Saga& saga, const StepInstance& at,
    const ItemSource& source, TemplateScratch* scratch,
    std::string idempotency_key, uint32_t attempt);

// The item `ref` of `items` (nullptr if it never started), and the state of
// step instance `at` of `saga` whose items are `items` (nullptr: inside an
// item that never started).
const ItemState* FindItemIn(const ItemTable& items, const ItemRef& ref);
const StepState* StepStateIn(const WorkflowDefinition& def, const Saga& saga,
                             const ItemTable& items, const StepInstance& at);

// The items of map instance `map` of `saga`, rendered from its map step's
// `items` (as params are: inside another map step's steps, with that
// item's context), or InvalidArgument saying why they are not an array.
Result<nlohmann::json> RenderMapItems(const WorkflowDefinition& def,
                                      const Saga& saga, const MapInstance& map,
                                      const ItemSource& source = {});
// The instance of the map step `map` runs as (a map step inside another
// map step's steps runs once per item of it).
StepInstance MapStepInstance(const MapInstance& map);
// The map instance whose items `at` (a map step's instance) runs.
MapInstance MapInstanceOf(const StepInstance& at);

// The delay before attempt `next_attempt` (>= 2) under `policy`, with
// `jitter_sample` in [0, 1) spreading it by +-policy.jitter.
int64_t BackoffMs(const RetryPolicy& policy, uint32_t next_attempt,
                  double jitter_sample);

// True if a failure of kind `kind` must not be retried under `policy`.
bool IsNonRetryable(const RetryPolicy& policy, const std::string& kind);

}  // namespace cde

#endif  // CDE_ENGINE_TRANSITIONS_H_
