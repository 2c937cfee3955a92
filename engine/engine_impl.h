// EngineImpl: the Engine behind engine.h. Private to engine/.
#ifndef CDE_ENGINE_ENGINE_IMPL_H_
#define CDE_ENGINE_ENGINE_IMPL_H_

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <unordered_map>

#include "engine/action_runner.h"
#include "engine/async_action.h"
#include "engine/attempt_gates.h"
#include "engine/concurrency_slots.h"
#include "engine/definition_registry.h"
#include "engine/dormancy.h"
#include "engine/engine.h"
#include "engine/inbox.h"
#include "engine/loop_committer.h"
#include "engine/metrics.h"
#include "engine/timer_queue.h"
#include "engine/transitions.h"
#include "engine/watchers.h"
#include "engine/work_gate.h"
#include "storage/commit_writer.h"
#include "storage/saga_id.h"

namespace cde {

// A step's metrics label: its path without item indices
// ("charge-all[3].charge" -> "charge-all.charge"), so that a map step's
// items are one series, not one per item.
std::string StepLabel(std::string_view path);

// Copies into plan->to_log the events whose log level is enabled.
void KeepEventsToLog(Plan* plan);
// Writes the log line for event `kind` (with `data`) of `saga`.
void LogSagaEvent(const Saga& saga, EventKind kind, const EventData& data);

// Runs `work` on libuv's thread pool and `after` back on the loop thread.
void RunBlocking(uv_loop_t* loop, std::function<void()> work,
                 std::function<void()> after);

// The engine's metric families, registered once (engine_metrics.cc).
// docs/metrics.md says what each one counts.
struct EngineInstruments {
  explicit EngineInstruments(Metrics& metrics);
  CounterFamily* sagas_started;    // {workflow}
  CounterFamily* sagas_finished;   // {workflow, outcome}
  HistogramFamily* step_duration;  // {workflow, step}
  CounterFamily* attempts;         // {workflow, step, result}
  CounterFamily* retries;          // {workflow, step}
  CounterFamily* compensations;    // {workflow, step}
  CounterFamily* parked;           // {workflow, reason}
  CounterFamily* replays;          // {workflow}
  CounterFamily* alerts;           // {workflow}
  Counter* checkpoints;
  GaugeFamily* breaker_state;          // {key}: 0 closed, 1 open, 2 half
  CounterFamily* breaker_transitions;  // {key, from, to}
  CounterFamily* gate_waits;           // {gate, key}
  Gauge* dlq_entries;
  Gauge* sagas_in_flight;
  Gauge* attempts_in_flight;
  Histogram* commit_latency;
  Histogram* commit_batch_size;
  Counter* commit_groups_gathered;
};

// The series a workflow definition's sagas and steps count in, looked up
// once instead of at every commit and outcome (MetricFamily::With takes a
// lock and compares label strings). Loop thread only. Entries are never
// dropped: neither are the series, nor the definitions a registry has held.
class SeriesCache {
 public:
  using Def = std::shared_ptr<const WorkflowDefinition>;
  struct Series {
    std::string label;  // the step label
    // cde_attempts_total by result, each filled once it is counted.
    Counter* ok = nullptr;
    Counter* error = nullptr;
    Counter* timeout = nullptr;
    Histogram* duration = nullptr;  // cde_step_duration_seconds
  };
  explicit SeriesCache(const EngineInstruments& m) : m_(m) {}
  // Of step `step` (an index into def->steps) of `def`, at `path` (one of
  // its instances: its label is the path without item indices).
  Series& Step(const Def& def, int step, std::string_view path);
  // cde_sagas_started_total and cde_sagas_finished_total of `def`.
  Counter& Started(const Def& def);
  Counter& Finished(const Def& def, SagaState state);

 private:
  struct OfDefinition {
    Def def;  // holds the key alive
    std::vector<std::optional<Series>> steps;
    Counter* started = nullptr;
    std::map<SagaState, Counter*> finished;
  };
  OfDefinition& Of(const Def& def);
  const EngineInstruments& m_;
  std::unordered_map<const WorkflowDefinition*, OfDefinition> by_def_;
};

// What Open makes of EngineOptions on this machine, before the store opens.
struct ResolvedOptions {
  std::shared_ptr<DestinationPolicy> destinations;
  ExecSandbox client_sandbox;
  Secrets secrets;
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(uv_loop_t* loop, EngineOptions options,
             std::unique_ptr<Store> store, ResolvedOptions resolved);
  ~EngineImpl() override;

  // Loads definitions and resumes active sagas. Called once by Open().
  Status Recover();

  Status RegisterAction(const std::string& name, NativeAction action) override;
  using Engine::RegisterWorkflow;
  void RegisterWorkflow(const nlohmann::json& definition,
                        DefinitionOrigin origin, const std::string& by,
                        Callback<DefinitionRecord> done) override;
  std::vector<std::shared_ptr<const WorkflowDefinition>> ListWorkflows()
      const override;
  void Start(StartRequest request, Callback<StartResult> done) override;
  void Cancel(const std::string& saga_id, bool compensate,
              const std::string& by, Callback<SagaState> done) override;
  void Replay(const std::string& saga_id, const std::string& from_step,
              const std::string& by, Callback<SagaState> done) override;
  void PurgeDlq(const std::string& saga_id, const std::string& by,
                Callback<DlqRecord> done) override;
  Status DenyOwnListener(const std::string& host, int port) override;
  const Saga* FindActive(const std::string& saga_id) const override;
  void ReadSaga(const std::string& saga_id, Callback<SagaRecord> done) override;
  uint64_t Watch(const std::string& saga_id,
                 std::function<void(const Saga&)> on_change) override;
  uint64_t WatchDefinitions(
      std::function<void(const DefinitionRecord&)> on_registered) override;
  void Unwatch(uint64_t watch_id) override;
  EngineStats stats() const override;
  void SetLimits(EngineLimits limits) override;
  Status health() const override { return health_; }
  Store& store() override { return *store_; }
  Metrics& metrics() override { return metrics_; }
  void ReadStore(std::function<void(Store&)> read,
                 std::function<void()> done) override;
  using Engine::Shutdown;
  void Shutdown(ShutdownOptions options,
                std::function<void(Status)> done) override;

 private:
  using DefPtr = std::shared_ptr<const WorkflowDefinition>;

  // One attempt of an active saga, from Dispatch until its result is
  // planned.
  struct Attempt {
    AttemptRef ref;
    int step = -1;  // its step's index in the definition
    // The gate (rate limit or circuit breaker) it waits at, "" = none; and
    // the breaker it reports to once dispatched.
    std::string gate;
    std::string breaker_key;
    // Held from its dispatch until its result is planned (in attempts_,
    // and so in work_): empty while it waits at a gate.
    WorkGate::Holder hold;
    TimerPtr timeout;  // armed while it runs, if its step has a timeout
    // Armed once it is stopped (Wait::stopped): how long its result is
    // awaited at most (EngineLimits::stopped_attempt_wait_ms).
    TimerPtr stopped_deadline;
    // The exec/http work, to abort on timeout or cancel.
    RunningAction running;
    // When it was dispatched (cde_step_duration_seconds).
    std::chrono::steady_clock::time_point dispatched;
    // Sent again after a restart (Resume): it may have reached its service
    // before the crash, so even stopped at a gate now, before this process
    // sent it, its outcome is unknown and its step is undone.
    bool maybe_sent = false;
    bool in_flight() const { return hold.holds(); }
  };

  // An active saga: in memory from its start (or recovery) until it is
  // terminal or parked.
  struct Active {
    Saga saga;
    DefPtr def;
    bool committing = false;  // a transition of this saga is in flight
    bool holds_slot = false;  // one of slots_ (max_concurrency)
    // Events that arrived while committing; run in order after the commit.
    // (A vector, not a deque: an empty std::deque allocates ~600 bytes, and
    // there is one of these per active saga.)
    std::vector<std::function<void()>> deferred;
    // Attempt results not yet planned, with when each reached the loop.
    // Those that arrive while a commit is in flight are planned as one
    // transition by one event in `deferred`: the open batch, which takes
    // more results as long as no other event was deferred after it
    // (`deferrals` counts them; open_batch_at is the count at its event).
    struct OutcomeBatch {
      std::vector<AttemptOutcome> outcomes;
      std::vector<std::chrono::steady_clock::time_point> arrived;  // each's
      void Add(AttemptOutcome o, std::chrono::steady_clock::time_point at) {
        outcomes.push_back(std::move(o));
        arrived.push_back(at);
      }
    };
    std::shared_ptr<OutcomeBatch> open_batch;
    uint64_t open_batch_at = 0;
    uint64_t deferrals = 0;
    // The attempts dispatched, or waiting at a gate to be, by step path.
    std::map<std::string, Attempt> attempts;
    // The items of its map steps, as committed; and each map step's items
    // rendered, once (what ${item} reads).
    ItemTable items;
    std::map<MapInstance, nlohmann::json> map_items;
    bool in_flight() const;
    // A shutdown checkpointed its attempts: late results are dropped (the
    // attempts run again after the next Open).
    bool checkpointed = false;
    // The last seq its last whole snapshot covers, as far as this process
    // knows (0: none written yet). Transitions in between write patches of
    // it (Plan::Build), at most kPatchedEvents events' worth.
    uint64_t snapshot_seq = 0;
    // The snapshot body of `saga` as its last commit encoded it, kept while
    // the saga goes straight on from one transition to the next (the base
    // of the next one's patch); empty otherwise.
    std::string committed_body;
    BodyLayout committed_layout;
  };

  int64_t Now() const;
  PlanContext Context(Active& a);
  // The items of map step `map` of a's saga, rendered once (nullptr if
  // they no longer render: the planner failed the step then).
  static const nlohmann::json* MapItems(Active& a, const MapInstance& map);
  // Where templates read `a`'s items from (as committed).
  static ItemSource SourceOf(Active& a);
  // The rendered items of the map instances whose map step no longer has
  // begun (a replay from before it) are dropped: they render anew.
  static void ForgetRestartedMaps(Active& a, const Plan& plan);
  std::shared_ptr<const WorkflowDefinition> FindWorkflow(
      const std::string& name, std::optional<uint32_t> version) const override {
    return definitions_.Find(name, version);
  }
  const nlohmann::json& DefinitionSchema() const override {
    return definitions_.Schema();
  }

  // Commits `plan` for `a`, then acts on it. `after` runs once committed.
  void Apply(Active& a, Plan&& plan, std::function<void(const Status&)> after);
  void Apply(Active& a, std::shared_ptr<Plan> plan,
             std::function<void(const Status&)> after);
  // A plan to plan into: one a commit gave back (its saga copied into the
  // strings and vectors it has, not new ones), or a new one.
  std::shared_ptr<Plan> SparePlan();
  // What a's plan may write a patch of its snapshot against instead of the
  // snapshot (none: the whole snapshot).
  static Plan::Base PatchBase(const Active& a, const Plan& plan);
  // At most this many events between a saga's whole snapshots.
  static constexpr uint64_t kPatchedEvents = 32;
  // A plan that encodes its snapshot body takes buffers a commit gave back
  // (a body and its layout would be three allocations per transition).
  void LendBodyBuffers(Plan& plan);
  void TakeBackBodyBuffers(Plan& plan);
  // `plan` is the committed plan's, which OnCommitted takes apart (and
  // keeps as a spare).
  void OnCommitted(const std::string& id, const std::shared_ptr<Plan>& plan,
                   const Status& status,
                   const std::function<void(const Status&)>& after);
  // Runs `event` now, or after the saga's commit in flight.
  void WhenIdle(Active& a, std::function<void()> event);
  // Runs the events that waited for a's commit (see WhenIdle).
  void RunDeferred(Active& a);

  // `input_bytes`: the input's JSON text length, measured by Start.
  void CreateSaga(StartRequest request, DefPtr def, size_t input_bytes,
                  Callback<StartResult> done);
  // Dispatches `attempt` of a's saga (through its gates).
  // `resumed`: the attempt was in flight when the engine last stopped.
  void Dispatch(Active& a, const AttemptRef& attempt, bool resumed = false);
  // An attempt's result, known on the loop thread, planned through the
  // inbox (as one from another thread is).
  void DeliverOutcome(const std::string& id, const AttemptRef& ref,
                      ActionResult result);
  static void PrepareResult(const std::vector<std::string>& secrets,
                            size_t max_output, bool compensation,
                            ActionResult* result);
  static AttemptOutcome OutcomeOf(const AttemptRef& ref, ActionResult result);
  // Whether a's saga still waits for the result of `attempt`.
  bool WaitsFor(const Active& a, const AttemptRef& attempt) const;
  void OnOutcome(const std::string& id, AttemptOutcome outcome);
  // Plans the results of `batch` as one transition.
  void PlanOutcomes(const std::string& id, Active::OutcomeBatch& batch);
  void OnTimerDue(const TimerQueue::Entry& entry);
  void ReleaseSlot(Active& a);
  void FillSlots(const std::string& workflow);
  void Resume(Active& a);
  void ParkPoisoned(SagaRecord record, const std::string& reason);
  // Deletes timer rows that wake nothing (Dormancy::Hooks::stale).
  void ForgetStaleTimers(std::vector<TimerRecord> rows);
  // Why a replay or purge of `saga_id` cannot start (shutting down, the
  // store unhealthy, the saga not parked: `rule` says what may), or OK.
  Status RefuseDlqWork(const std::string& saga_id, std::string_view rule) const;
  // `redrive_due_ms` != 0: the dlq.auto_replay timer due then replays it,
  // if the saga still waits for that timer.
  struct StoredSaga {
    SagaRecord record;
    std::vector<ItemRecord> items;
  };
  // A saga's snapshot and its map items, read off the loop.
  Result<StoredSaga> ReadStoredSaga(const std::string& saga_id);
  // A saga's snapshot with its input (LoadLoggedInput), read off the loop.
  Result<SagaRecord> ReadSagaWithInput(const std::string& saga_id);
  void StartReplay(Result<StoredSaga> stored, const std::string& from_step,
                   const std::string& by, int64_t redrive_due_ms,
                   const Callback<SagaState>& done);
  // A parked saga's automatic replay: into the timer queue if it falls due
  // within the window (else a later Dormancy scan brings it), and when due.
  void QueueRedrive(const std::string& saga_id, int64_t due_ms);
  void Redrive(const TimerQueue::Entry& e);

  // Gates (engine_gates.cc): the rate limit and the circuit breaker an
  // attempt passes before it is dispatched. False: it waits in the gate's
  // FIFO, and Dispatch runs again when the gate lets it through.
  bool PassGates(const std::string& saga_id, Attempt& attempt,
                 const StepSpec& step, const ActionSpec& spec,
                 const nlohmann::json& params);
  // AttemptGates::Hooks::go: dispatches the attempt `waiter` (a GateWaiter)
  // that waited at `gate`, if it still waits there.
  bool GoThroughGate(const std::string& waiter, const std::string& gate);
  void RecordBreaker(Attempt& attempt, const AttemptOutcome& o);
  // A cancelled saga's attempts stop waiting at their gates.
  void LeaveGates(const std::string& saga_id);
  // The attempt at `path` was stopped (PlanAction::kStopAttempt): if it
  // still waits at a gate it never runs (its outcome: kStoppedErrorKind);
  // if it was dispatched it runs to its end, and its result is planned,
  // awaited for stopped_attempt_wait_ms at most.
  void StopAttempt(Active& a, const std::string& path);
  // Past `attempt`'s deadline (stopped_deadline): out of its gate, its
  // work aborted, its outcome unknown (kAbandonedErrorKind).
  void ArmStoppedDeadline(const std::string& saga_id, Attempt& attempt);
  void OnBreakerTransition(const std::string& key, BreakerState from,
                           BreakerState to);
  std::optional<uint32_t> ConcurrencyLimit(const WorkflowDefinition& def) const;
  // A saga of `workflow` failed: counts towards the alert.
  void NoteFailure(const std::string& workflow);
  // Stops an attempt's timeout timer and aborts its exec/http work.
  void Abandon(Attempt& attempt);
  // Abandons every attempt of `a`.
  void AbandonAttempts(Active& a);
  // work_ has drained: closes every handle, then the store.
  void FinishShutdown();
  // Runs `work` off the loop and `after` on it, holding work_ meanwhile.
  void OffLoop(std::function<void()> work, std::function<void()> after);
  // Shutdown: the grace period is over (or no attempt was running). Cancels
  // the attempts still running and commits a checkpoint for each.
  void CheckpointInFlight();
  void Checkpoint(Active& a);

  // Makes a dormant saga (one waiting on a far timer, not in memory) active
  // again and queues its timer. Returns nullptr if it is not dormant.
  Active* Adopt(Saga saga);
  void CancelActive(const std::string& saga_id, bool compensate,
                    const std::string& by, Callback<SagaState> done);

  // Metrics (engine_metrics.cc). `plan` has committed.
  void ObserveCommitted(const Active& a, const Plan& plan);
  // `attempt` of `a` is being dispatched (stamps attempt.dispatched).
  void ObserveDispatch(const Active& a, Attempt& attempt);
  // Attempt `o` of `a` has its (non-stale) outcome, which reached the loop
  // at `arrived`.
  void ObserveOutcome(const Active& a, const Attempt& attempt,
                      const AttemptOutcome& o,
                      std::chrono::steady_clock::time_point arrived);
  // The park of a saga of `workflow` that could not be resumed committed.
  void ObservePoisoned(const std::string& workflow);
  // committer_->Commit, timed into cde_commit_latency_seconds.
  void Commit(Transition transition, LoopCommitter::Then then);

  uv_loop_t* const loop_;
  // What shutdown waits for: every commit, read off the loop and attempt
  // holds work_ while it runs. attempts_ (within work_) counts the attempts
  // in flight. handles_ holds the close of each handle at the end.
  // Declared first: destroyed after everything that holds them.
  WorkGate work_;
  WorkGate attempts_{&work_};
  WorkGate handles_;
  EngineOptions options_;
  Clock& clock_;                                     // *options_.clock
  std::shared_ptr<DestinationPolicy> destinations_;  // shared with actions_
  const Secrets secrets_;
  // Before the writer, which observes into it from its own thread.
  Metrics metrics_;
  EngineInstruments m_{metrics_};
  SeriesCache series_{m_};
  std::unique_ptr<Store> store_;
  std::unique_ptr<CommitWriter> writer_;
  std::unique_ptr<LoopCommitter> committer_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<Dormancy> dormancy_;
  std::unique_ptr<ActionRunner> actions_;
  std::shared_ptr<Inbox> inbox_;
  SagaIdGenerator ids_;
  std::mt19937_64 rng_;
  Status health_;

  DefinitionRegistry definitions_;
  Watchers watchers_;
  std::unordered_map<std::string, std::unique_ptr<Active>> active_;
  // Buffers of snapshot bodies for the next plans (LendBodyBuffers); at
  // most one per commit in flight is ever out.
  std::vector<std::string> spare_bodies_;
  std::vector<BodyLayout> spare_layouts_;
  // Committed plans for the next ones (SparePlan); each still holds the
  // state its saga had before its commit.
  std::vector<std::shared_ptr<Plan>> spare_plans_;
  // The lists a result planned at once is planned with (OnOutcome,
  // PlanOutcomes), kept with their room from one result to the next.
  Active::OutcomeBatch spare_batch_;
  std::vector<bool> spare_applied_;
  // Starts with an idempotency key that is being looked up or committed.
  // Later starts with the same key wait here and get the same saga.
  struct PendingKey {
    std::string saga_id;  // empty while the store lookup runs
    std::vector<Callback<StartResult>> waiters;
  };
  std::unordered_map<std::string, PendingKey> pending_keys_;
  void ResolveKey(const std::string& key, const Result<StartResult>& result);
  ConcurrencySlots slots_;  // max_concurrency

  // Parked sagas whose purge is being read or committed: a replay of one
  // is refused (Busy) meanwhile.
  std::set<std::string> purging_;
  // Parked sagas whose redrive timer is in timers_.
  std::set<std::string> redrives_;

  EngineLimits limits_;
  AttemptGates gates_;
  // Alerts: failure times by workflow within the window, and when each
  // workflow last alerted.
  std::map<std::string, std::deque<int64_t>> failures_;
  std::map<std::string, int64_t> alerted_ms_;

  // The state of the saga whose commit OnCommitted is acting on, for the
  // `after` callbacks it runs.
  SagaState committed_state_ = SagaState::kRunning;
  bool shutting_down_ = false;
  // Shutdown: running attempts have finished or been checkpointed.
  bool drained_ = false;
  TimerPtr grace_timer_;  // the grace period of a shutdown
  std::function<void(Status)> shutdown_done_;
};

}  // namespace cde

#endif  // CDE_ENGINE_ENGINE_IMPL_H_
