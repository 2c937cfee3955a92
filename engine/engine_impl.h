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

#include "engine/async_action.h"
#include "engine/engine.h"
#include "engine/inbox.h"
#include "engine/loop_committer.h"
#include "engine/metrics.h"
#include "engine/timer_queue.h"
#include "engine/transitions.h"
#include "storage/commit_writer.h"
#include "storage/saga_id.h"

namespace cde {

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
  Gauge* dlq_entries;
  Gauge* sagas_in_flight;
  Gauge* attempts_in_flight;
  Histogram* commit_latency;
  Histogram* commit_batch_size;
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(uv_loop_t* loop, EngineOptions options,
             std::unique_ptr<Store> store);
  ~EngineImpl() override;

  // Loads definitions and resumes active sagas. Called once by Open().
  Status Recover();

  Status RegisterAction(const std::string& name, NativeAction action) override;
  void RegisterWorkflow(const nlohmann::json& definition,
                        Callback<DefinitionRecord> done) override;
  std::vector<std::shared_ptr<const WorkflowDefinition>> ListWorkflows()
      const override;
  void Start(StartRequest request, Callback<StartResult> done) override;
  void Cancel(const std::string& saga_id, bool compensate,
              Callback<SagaState> done) override;
  void Replay(const std::string& saga_id, const std::string& from_step,
              Callback<SagaState> done) override;
  void PurgeDlq(const std::string& saga_id, Callback<DlqRecord> done) override;
  const Saga* FindActive(const std::string& saga_id) const override;
  void ReadSaga(const std::string& saga_id, Callback<SagaRecord> done) override;
  uint64_t Watch(const std::string& saga_id,
                 std::function<void(const Saga&)> on_change) override;
  void Unwatch(uint64_t watch_id) override;
  EngineStats stats() const override;
  Status health() const override { return health_; }
  Store& store() override { return *store_; }
  Metrics& metrics() override { return metrics_; }
  void ReadStore(std::function<void(Store&)> read,
                 std::function<void()> done) override;
  void Shutdown(std::function<void(Status)> done) override;

 private:
  using DefPtr = std::shared_ptr<const WorkflowDefinition>;

  // An active saga: in memory from its start (or recovery) until it is
  // terminal or parked.
  struct Active {
    Saga saga;
    DefPtr def;
    bool committing = false;  // a transition of this saga is in flight
    bool holds_slot = false;  // counted in running_ (max_concurrency)
    // Events that arrived while committing; run in order after the commit.
    // (A vector, not a deque: an empty std::deque allocates ~600 bytes, and
    // there is one of these per active saga.)
    std::vector<std::function<void()>> deferred;
    uv_timer_t* attempt_timeout = nullptr;  // owned; closed when done
    // The exec/http attempt in flight, to abort on timeout or cancel.
    AsyncAction* async_action = nullptr;
    uint64_t async_handle = 0;
    // When the attempt in flight was dispatched (cde_step_duration_seconds).
    std::chrono::steady_clock::time_point dispatched;
  };

  int64_t Now() const;
  PlanContext Context(const Active& a);
  DefPtr FindDefinition(const std::string& name,
                        std::optional<uint32_t> version) const;
  Status AddDefinition(const DefinitionRecord& record);

  // Commits `plan` for `a`, then acts on it. `after` runs once committed.
  void Apply(Active& a, Plan plan, std::function<void(const Status&)> after);
  void OnCommitted(const std::string& id, Plan plan, const Status& status,
                   const std::function<void(const Status&)>& after);
  // Runs `event` now, or after the saga's commit in flight.
  void WhenIdle(Active& a, std::function<void()> event);

  void CreateSaga(StartRequest request, DefPtr def, Callback<StartResult> done);
  void Dispatch(Active& a);
  void OnOutcome(const std::string& id, AttemptOutcome outcome);
  void OnTimerDue(const TimerQueue::Entry& entry);
  void ReleaseSlot(Active& a);
  void FillSlots(const std::string& workflow);
  void Resume(Active& a);
  void ParkPoisoned(SagaRecord record, const std::string& reason);
  void StartReplay(Result<SagaRecord> found, const std::string& from_step,
                   const Callback<SagaState>& done);
  void StopAttemptTimeout(Active& a);
  // Stops the attempt's timeout timer and aborts its exec/http work.
  void AbandonAttempt(Active& a);
  void MaybeFinishShutdown();

  // The near window of timers (EngineOptions::timer_window_ms).
  bool BeyondWindow(const Wait& wait) const;
  // Makes a dormant saga (one waiting on a far timer, not in memory) active
  // again and queues its timer. Returns nullptr if it is not dormant.
  Active* Adopt(Saga saga);
  // Every half window: loads the dormant sagas whose timers fall due within
  // the window.
  static void OnLoadTimers(uv_timer_t* handle);
  void LoadDueDormant();
  void CancelActive(const std::string& saga_id, bool compensate,
                    Callback<SagaState> done);

  // Metrics (engine_metrics.cc). A plan of `a` has committed; called
  // before a.saga becomes plan.saga, so both snapshots are at hand.
  void ObserveCommitted(const Active& a, const Plan& plan);
  // The attempt `a` waits for is being dispatched (stamps a.dispatched).
  void ObserveDispatch(Active& a);
  // Attempt `o` of `a` has its (non-stale) outcome, which reached the loop
  // at `arrived`.
  void ObserveOutcome(const Active& a, const AttemptOutcome& o,
                      std::chrono::steady_clock::time_point arrived);
  // The park of a saga of `workflow` that could not be resumed committed.
  void ObservePoisoned(const std::string& workflow);
  // committer_->Commit, timed into cde_commit_latency_seconds.
  void Commit(Transition transition, LoopCommitter::Then then);

  uv_loop_t* const loop_;
  EngineOptions options_;
  // Before the writer, which observes into it from its own thread.
  Metrics metrics_;
  EngineInstruments m_{metrics_};
  std::unique_ptr<Store> store_;
  std::unique_ptr<CommitWriter> writer_;
  std::unique_ptr<LoopCommitter> committer_;
  std::unique_ptr<TimerQueue> timers_;
  uv_timer_t window_timer_;  // drives LoadDueDormant
  bool loading_dormant_ = false;
  std::unique_ptr<AsyncAction> exec_;
  std::unique_ptr<AsyncAction> http_;
  std::shared_ptr<Inbox> inbox_;
  SagaIdGenerator ids_;
  std::mt19937_64 rng_;
  Status health_;

  std::map<std::string, NativeAction> actions_;
  // name -> version -> definition
  std::map<std::string, std::map<uint32_t, DefPtr>> definitions_;
  // The registered documents, so re-registration compares in memory; an
  // entry is claimed before its commit, so two registrations of one new
  // version cannot both be written.
  std::map<std::pair<std::string, uint32_t>, DefinitionRecord> records_;
  std::set<std::pair<std::string, uint32_t>> registering_;
  std::unordered_map<std::string, std::unique_ptr<Active>> active_;
  // Starts with an idempotency key that is being looked up or committed.
  // Later starts with the same key wait here and get the same saga.
  struct PendingKey {
    std::string saga_id;  // empty while the store lookup runs
    std::vector<Callback<StartResult>> waiters;
  };
  std::unordered_map<std::string, PendingKey> pending_keys_;
  void ResolveKey(const std::string& key, const Result<StartResult>& result);
  // max_concurrency: running (non-queued) count and the FIFO of the rest.
  std::map<std::string, uint32_t> running_;
  std::map<std::string, std::deque<std::string>> queued_;

  // Parked sagas whose purge is being read or committed: a replay of one
  // is refused (Busy) meanwhile.
  std::set<std::string> purging_;

  uint64_t next_watch_ = 1;
  std::unordered_map<std::string,
                     std::map<uint64_t, std::function<void(const Saga&)>>>
      watchers_;
  std::unordered_map<uint64_t, std::string> watch_index_;

  // The state of the saga whose commit OnCommitted is acting on, for the
  // `after` callbacks it runs.
  SagaState committed_state_ = SagaState::kRunning;
  uint64_t attempts_in_flight_ = 0;
  uint64_t blocking_work_ = 0;  // uv_queue_work requests outstanding
  bool shutting_down_ = false;
  std::function<void(Status)> shutdown_done_;
  int handles_open_ = 0;
};

}  // namespace cde

#endif  // CDE_ENGINE_ENGINE_IMPL_H_
