// Engine: runs every saga of one store on one libuv loop.
//
// The engine owns the store, the group-commit writer and the saga state. For
// each event (a start, an attempt's result, a timer, a cancel) it plans the
// transition (transitions.h), commits it, and only once the commit has landed
// acts on it: dispatches the next attempt, arms a timer, answers the caller.
// Open() resumes every saga that was in flight when the process last stopped.
//
// Thread safety: every method runs on the loop thread, and every callback is
// called there. Native actions may complete from any thread.
#ifndef CDE_ENGINE_ENGINE_H_
#define CDE_ENGINE_ENGINE_H_

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/action_policy.h"
#include "engine/actions.h"
#include "engine/clock.h"
#include "engine/commit_polling.h"
#include "engine/definition.h"
#include "engine/limits.h"
#include "engine/metrics.h"
#include "engine/saga.h"
#include "engine/secrets.h"
#include "storage/store.h"

namespace cde {

// What the engine limits at run time (docs/configuration.md: limits,
// circuit_breakers, alerts). Engine::SetLimits replaces them (a reload).
struct EngineLimits {
  BreakerPolicy breaker_default;
  std::map<std::string, BreakerPolicy> breakers;  // by breaker key
  // Token buckets by a step's `rate_limit` key; keys not here: unlimited.
  std::map<std::string, RatePolicy> outbound;
  // Max running sagas by workflow; overrides the definition's.
  std::map<std::string, uint32_t> max_concurrency;
  // A workflow whose sagas fail (end compensated or parked) this many times
  // within alert_window_ms logs one warning per window; 0 = never.
  uint32_t alert_failures = 10;
  int64_t alert_window_ms = 60000;
  // Sizes, as compact JSON text (docs/configuration.md: limits.*). Over
  // them, a registration or a start is refused, and a step's output fails
  // the attempt with kLimitErrorKind: a snapshot holds every output of its
  // saga and is written at each transition.
  uint64_t definition_bytes = uint64_t{1} << 20;
  uint32_t definition_steps = 256;  // <= kMaxDefinitionSteps; nested too
  uint32_t branches = 32;           // per parallel step, <= kMaxBranches
  // Items per map step, <= kMaxMapItems: checked when the map starts (its
  // items are known then); more fail the step with kLimitErrorKind.
  uint32_t map_items = 10000;
  uint64_t input_bytes = uint64_t{256} << 10;
  uint64_t output_bytes = uint64_t{256} << 10;
  // How long the result of an attempt stopped in flight (another branch
  // or item failed) is awaited before its undo, at most: past it the
  // attempt is aborted and its outcome taken as unknown (compensated). An
  // attempt without its own timeout_ms could otherwise hold the undo
  // forever.
  int64_t stopped_attempt_wait_ms = 60000;
};

struct EngineOptions {
  // The RocksDB store to open. Ignored when `store` is set.
  std::string data_dir = "./cde-data";
  // A store to run on instead (e.g. NewMemoryStore() in tests).
  std::unique_ptr<Store> store;
  // Commits are fdatasync'ed before anything acts on them (see
  // CommitWriterOptions::sync). Turning this off trades machine-crash
  // durability of the last transitions for throughput.
  bool sync = true;
  // The commit writer waits for the sagas a synced group released when they
  // come back faster than the disk syncs (CommitWriterOptions::
  // gather_returning): one fdatasync for all of them, not one per half.
  bool commit_gather = true;
  // One group's fdatasync overlaps the next group's write
  // (CommitWriterOptions::pipeline); commit_gather then applies to its
  // syncs instead of its writes.
  bool commit_pipeline = false;
  // How the loop picks up its commits' completions while 8 or more are in
  // flight (engine/commit_polling.h, LoopCommitter): adaptive polls only
  // where a completion is due, and picks each group up tens of
  // microseconds sooner than a sleeping loop's wake-up for a few hundred
  // microseconds of the loop's CPU per sync.
  CommitPolling commit_poll = CommitPolling::kAdaptive;
  // The store's WAL spare (StoreOptions::wal_spare_bytes); with data_dir.
  uint64_t wal_spare_bytes = StoreOptions().wal_spare_bytes;
  // Native actions, registered before recovery so resumed sagas find them.
  std::map<std::string, NativeAction> actions;
  // Seeds saga ids and retry jitter; 0 = random.
  uint64_t seed = 0;
  // Sagas waiting on a timer (a sleep, a retry backoff) due further ahead
  // than this are not kept in memory: their timer row is durable, and they
  // are loaded from the store again shortly before they fall due. So a
  // million sleeping sagas cost disk, not memory.
  int64_t timer_window_ms = 60000;
  // false = maintenance: recovery loads sagas but dispatches no attempt and
  // arms no timer; transitions are committed (a cancel, a replay) and
  // whatever they would run waits for the next start of a server. For
  // operator tools (cde-admin) that change a store no server runs on.
  bool run_sagas = true;
  EngineLimits limits;
  // What definitions registered by clients may do (action_policy.h).
  ActionPolicy action_policy;
  // Where ${secret.NAME} values come from (secrets.h).
  SecretsOptions secrets;
  // The engine's time and timers (clock.h); null = the system clock. Tests
  // pass a ManualClock and advance it.
  std::shared_ptr<Clock> clock;
};

struct StartRequest {
  std::string workflow;
  std::optional<uint32_t> version;  // nullopt: the latest registered
  nlohmann::json input = nlohmann::json::object();
  std::string idempotency_key;  // "" = none
  std::string correlation_id;   // the caller's, logged with the saga
  // Who asked: a bearer token's name, "local" (stdio, cde-admin offline),
  // "anonymous" (HTTP without tokens). Stored and logged with the saga;
  // "" = not recorded (the C++ API's default).
  std::string started_by;
  // The caller's W3C traceparent ("" = none): the saga joins its trace. A
  // missing or malformed one starts a fresh trace.
  std::string traceparent;
};

struct StartResult {
  std::string saga_id;
  SagaState state = SagaState::kRunning;
  bool created = true;  // false: an earlier start with the same key
};

struct ShutdownOptions {
  int64_t grace_ms = 0;  // how long running attempts may take to finish
};

struct EngineStats {
  std::map<std::string, uint64_t> active_by_state;
  uint64_t attempts_in_flight = 0;
  // What a shutdown would wait for: attempts in flight, commits not yet
  // acted on, reads of the store off the loop thread.
  uint64_t work_in_flight = 0;
  uint64_t timers_pending = 0;
  uint64_t queued = 0;  // waiting under max_concurrency
  uint64_t commits = 0;
  uint64_t commit_groups = 0;
  uint64_t commit_groups_gathered = 0;  // CommitWriterStats::gathered
  uint64_t commit_early_writes = 0;     // CommitWriterStats::early_writes
  // CommitWriterStats::early_write_cpu_ns over early_write_cpu_transitions.
  uint64_t commit_early_write_cpu_ns = 0;
  uint64_t commit_early_write_cpu_transitions = 0;
  // A commit cycle's parts, summed (CommitWriterStats: first_return_ns over
  // first_returns, gather_ns over commit_groups_gathered, write_ns over
  // commit_groups).
  uint64_t commit_first_return_ns = 0;
  uint64_t commit_first_returns = 0;
  uint64_t commit_all_return_ns = 0;  // over commit_all_returns
  uint64_t commit_all_returns = 0;
  uint64_t commit_tell_ns = 0;  // over commit_groups
  uint64_t commit_gather_ns = 0;
  uint64_t commit_write_ns = 0;
  uint64_t commit_bytes = 0;  // of the rows written
  // Attempts held back by a rate limit or an open circuit breaker.
  uint64_t waiting_at_gates = 0;
  std::vector<CircuitBreakers::View> breakers;
};

class Engine {
 public:
  template <typename T>
  using Callback = std::function<void(Result<T>)>;

  // Opens the store, loads definitions and resumes active sagas.
  static Result<std::unique_ptr<Engine>> Open(uv_loop_t* loop,
                                              EngineOptions options);
  virtual ~Engine() = default;

  // Registers a native action (see actions.h). AlreadyExists if taken.
  virtual Status RegisterAction(const std::string& name,
                                NativeAction action) = 0;

  // Validates and stores a definition. Re-registering identical content is
  // a no-op (but an operator's registration of a client's definition makes
  // it the operator's); different content under an existing version is
  // AlreadyExists. A client's definition must also pass the action policy
  // (EngineOptions::action_policy), checked again when its attempts run.
  // `by` (who: a token's name, "local", "workflows_dir"; "" = not
  // recorded) is stored with it.
  virtual void RegisterWorkflow(const nlohmann::json& definition,
                                DefinitionOrigin origin, const std::string& by,
                                Callback<DefinitionRecord> done) = 0;
  // An operator's registration through the C++ API.
  void RegisterWorkflow(const nlohmann::json& definition,
                        Callback<DefinitionRecord> done) {
    RegisterWorkflow(definition, DefinitionOrigin::kOperator, "",
                     std::move(done));
  }
  virtual std::vector<std::shared_ptr<const WorkflowDefinition>> ListWorkflows()
      const = 0;
  // The definition `name` at `version` (the latest without one), or null:
  // a lookup, not a copy of the list, for paths that run per saga.
  virtual std::shared_ptr<const WorkflowDefinition> FindWorkflow(
      const std::string& name, std::optional<uint32_t> version) const = 0;

  // The definition language as JSON Schema, with this engine's native
  // actions among the actions (DefinitionJsonSchema).
  virtual const nlohmann::json& DefinitionSchema() const = 0;

  // Starts a saga; `done` runs once its start is durable.
  virtual void Start(StartRequest request, Callback<StartResult> done) = 0;
  // Cancels a running saga: it stops after the current attempt, then
  // compensates (or, with compensate = false, just stops). `by` (who asks:
  // a token's name, "local"; "" = not recorded) goes on its log and
  // snapshot (cancelled_by), as Replay's does (replayed_by).
  virtual void Cancel(const std::string& saga_id, bool compensate,
                      const std::string& by, Callback<SagaState> done) = 0;
  // Replays a parked saga (see PlanReplay).
  virtual void Replay(const std::string& saga_id, const std::string& from_step,
                      const std::string& by, Callback<SagaState> done) = 0;
  // Deletes a parked saga for good: its snapshot, log, index rows, timers,
  // idempotency row and DLQ entry, in one transition that also writes an
  // audit record (meta "audit/dlq_purge/<id>": the DLQ entry, purged_ms,
  // purged_by = `by`). `done` gets the DLQ entry that was purged.
  // InvalidArgument for a saga that is not parked, NotFound for an unknown
  // one.
  virtual void PurgeDlq(const std::string& saga_id, const std::string& by,
                        Callback<DlqRecord> done) = 0;

  // The current snapshot of any saga: from memory when it is active, else
  // read from the store off the loop thread. NotFound for an unknown id.
  virtual void ReadSaga(const std::string& saga_id,
                        Callback<SagaRecord> done) = 0;
  // The in-memory state of an active saga, or nullptr.
  virtual const Saga* FindActive(const std::string& saga_id) const = 0;
  // Calls `on_change` after each committed change of `saga_id` while the
  // watch lasts. Returns a watch id for Unwatch.
  virtual uint64_t Watch(const std::string& saga_id,
                         std::function<void(const Saga&)> on_change) = 0;
  // Calls `on_registered` after each definition registered from now on (a
  // new name or version; registering the same content again changes
  // nothing and calls nothing), from any surface. Returns a watch id for
  // Unwatch.
  virtual uint64_t WatchDefinitions(
      std::function<void(const DefinitionRecord&)> on_registered) = 0;
  // Ends a watch of either kind.
  virtual void Unwatch(uint64_t watch_id) = 0;

  // Tells the http action's destination policy about a listener of this
  // server (an IP literal; an unspecified one stands for every local
  // address), which no definition's http step may then reach: a workflow
  // must not call the server's own API with the server's privileges.
  // InvalidArgument if `host` is not an IP address.
  virtual Status DenyOwnListener(const std::string& host, int port) = 0;

  virtual EngineStats stats() const = 0;
  // Replaces the run-time limits. Breakers keep their state and buckets
  // their tokens; a raised max_concurrency lets queued sagas start.
  virtual void SetLimits(EngineLimits limits) = 0;
  // OK, or why the engine refuses work (a failed commit, shutting down).
  virtual Status health() const = 0;
  // For reads (get_saga, logs); thread-safe.
  virtual Store& store() = 0;
  // The engine's metrics (docs/metrics.md); thread-safe. A /metrics
  // endpoint renders it, and the server may add its own families to it.
  virtual Metrics& metrics() = 0;
  // Runs `read` against the store on libuv's thread pool, then `done` on
  // the loop thread: for reads the loop must not wait on (pages of sagas,
  // logs, the DLQ). Shutdown waits for reads in flight.
  virtual void ReadStore(std::function<void(Store&)> read,
                         std::function<void()> done) = 0;

  // Stops taking work: starts, replays and purges are refused
  // (ShutdownInProgress), timers that fall due wait for the next Open, and
  // no further attempt is dispatched. Attempts already running get
  // `options.grace_ms` to finish, and their results are committed. Those
  // still running then are cancelled and logged with a `checkpoint` event;
  // the next Open resumes them before the others (at least once: they run
  // again). Then commits in flight drain, every handle and the store close
  // (flushing RocksDB's memtables, so the next Open replays no WAL), and
  // `done` runs.
  virtual void Shutdown(ShutdownOptions options,
                        std::function<void(Status)> done) = 0;
  // Shutdown with no grace: running attempts are checkpointed at once.
  void Shutdown(std::function<void(Status)> done) {
    Shutdown(ShutdownOptions{}, std::move(done));
  }
};

// ReadStore with a typed result: `read` runs off the loop, `done` gets its
// result on the loop thread.
template <typename T>
void QueryStore(Engine& engine, std::function<Result<T>(Store&)> read,
                std::function<void(Result<T>)> done) {
  auto result = std::make_shared<Result<T>>(Status::Aborted("not read"));
  engine.ReadStore([result, read](Store& s) { *result = read(s); },
                   [result, done] { done(std::move(*result)); });
}

// For programs that own the loop: shuts `engine` down, running `loop` until
// the shutdown has finished and every handle it closed is gone, then
// destroys the engine. Returns the shutdown's status.
Status ShutdownAndWait(uv_loop_t* loop, std::unique_ptr<Engine> engine,
                       ShutdownOptions options = {});

}  // namespace cde

#endif  // CDE_ENGINE_ENGINE_H_
