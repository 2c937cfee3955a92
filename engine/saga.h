// Saga: the engine's typed view of one saga, kept in memory while the saga
// is active and stored as the `body` of its SagaRecord snapshot.
//
// `steps` holds one StepState per step of the definition, nested ones
// included, in the definition's order (WorkflowDefinition::steps). Forward
// while running, backward while compensating; the branches of a parallel
// step run side by side, so several attempts may be in flight. `waits` says
// what the saga waits for (attempts' results, timers) so that a restart
// knows what to resume.
#ifndef CDE_ENGINE_SAGA_H_
#define CDE_ENGINE_SAGA_H_

#include <compare>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "engine/kinds.h"
#include "storage/records.h"
#include "storage/status.h"
#include "storage/store.h"

namespace cde {

struct WorkflowDefinition;

// A step's own outcome. What became of its compensation is a field of its
// own (CompensationStatus): a step that succeeded and was then compensated
// still says it succeeded.
enum class StepStatus {
  kPending,  // not started
  kRunning,  // an attempt was started; outcome not yet known
  kSucceeded,
  kFailed,     // failed permanently
  kCancelled,  // the saga was cancelled while the step waited (a sleep, or
               // its first attempt behind a gate): it never finished; or
               // a step of another branch failed for good and this one was
               // stopped before it ran (error kind "stopped"), or while its
               // attempt was in flight and the saga stopped too (parked, or
               // the engine restarted: error kind "abandoned", its outcome
               // unknown)
};
std::string_view StepStatusName(StepStatus s);
// The status named `name` ("failed"), or nullopt.
std::optional<StepStatus> StepStatusFromName(std::string_view name);
// Every status's name, in order ("pending" ... "cancelled").
std::vector<std::string_view> StepStatusNames();

enum class CompensationStatus {
  kNone,        // not called for (yet)
  kRunning,     // under way
  kSucceeded,   // the step's effect was undone
  kFailed,      // failed permanently: the saga is parked
  kNotDefined,  // the step needed undoing but defines no compensation
};
std::string_view CompensationStatusName(CompensationStatus s);

struct ErrorInfo {
  std::string kind;  // "" = no error
  std::string message;
  bool empty() const { return kind.empty() && message.empty(); }
  friend bool operator==(const ErrorInfo&, const ErrorInfo&) = default;
};

// A map step's progress over its items, kept in the saga's snapshot (for a
// map step inside another map step's steps, in the state of the item it
// runs for): a few counters whatever the number of items. Each item's own
// state is a row of its own (ItemState).
struct MapProgress {
  bool began = false;    // its items were rendered and counted
  uint32_t items = 0;    // how many
  uint32_t next = 0;     // the next item to consider starting; every
                         // item below it has started
  uint32_t started = 0;  // items 0..started-1 have started at some time
  uint32_t running = 0;  // items going forward now
  uint32_t succeeded = 0;
  uint32_t failed = 0;  // items that failed for good
  // Compensation, newest item first: undo_left items (0..undo_left-1) are
  // still to be undone, `undoing` are being undone now.
  bool undo_began = false;
  uint32_t undo_left = 0;
  uint32_t undoing = 0;
  friend bool operator==(const MapProgress&, const MapProgress&) = default;
};

struct StepState {
  StepStatus status = StepStatus::kPending;
  uint32_t attempts = 0;               // attempts of the step itself
  uint32_t compensation_attempts = 0;  // attempts of its compensation
  // Attempts made before the saga's last replay. Attempt numbers (and so
  // idempotency keys) go on from them, so that a replay never presents a
  // service with a key whose answer it may have kept (a failure); the
  // retry budget (retry.max_attempts) counts from them.
  uint32_t attempts_base = 0;
  uint32_t compensation_attempts_base = 0;
  uint32_t attempts_this_run() const { return attempts - attempts_base; }
  CompensationStatus compensation = CompensationStatus::kNone;
  nlohmann::json output;         // null until it succeeds
  ErrorInfo error;               // last error of the step
  ErrorInfo compensation_error;  // last error of its compensation
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  MapProgress map;  // a map step's only
  friend bool operator==(const StepState&, const StepState&) = default;
};

// One item of a map step: the states of the map's steps for it (one per
// step inside the map, in definition order: step map + 1 + i is steps[i]).
// Stored as a row of its own (ItemRecord), never in the snapshot.
struct ItemState {
  StepStatus status = StepStatus::kPending;  // the item's own outcome
  CompensationStatus compensation = CompensationStatus::kNone;  // its undo
  ErrorInfo error;                                              // why it failed
  std::vector<StepState> steps;
  friend bool operator==(const ItemState&, const ItemState&) = default;
};

// One run of a map step: the map step (its index in the definition), and
// for a map step inside another map step's steps the indices of the items
// it runs for, outermost first (empty for a map step outside map steps).
// Each has items of its own.
struct MapInstance {
  int map = -1;
  std::vector<uint32_t> outer;
  friend auto operator<=>(const MapInstance&, const MapInstance&) = default;
};

// Which item: item `index` of the map instance {map, outer}.
struct ItemRef {
  int map = -1;
  uint32_t index = 0;
  std::vector<uint32_t> outer;  // as MapInstance::outer
  MapInstance instance() const { return {map, outer}; }
  friend auto operator<=>(const ItemRef&, const ItemRef&) = default;
};

// The items of a saga's map instances that have started, by map instance,
// each indexed by item. What the engine keeps in memory beside the Saga.
using ItemTable = std::map<MapInstance, std::vector<ItemState>>;

// The item row's body, and the item from one. Corruption names the saga,
// map and item.
nlohmann::json ItemToJson(const ItemState& item);
Result<ItemState> ItemFromJson(const nlohmann::json& body,
                               const std::string& where);
// The item of store row `row` of map step `map` (an index into def.steps):
// Corruption naming the saga, map and item when `map` is not a map step,
// or the row does not decode or does not hold one state per step of it.
Result<ItemState> ItemFromRow(const WorkflowDefinition& def, int map,
                              const ItemRecord& row);
// The map instance a row's map path names ("fan", "outer[3].inner"), or
// Corruption naming the row when `def` has no map step there.
Result<MapInstance> MapInstanceOfRow(const WorkflowDefinition& def,
                                     const ItemRecord& row);
// The item table of `items` (store rows) for the sagas of `def`; rows of
// map steps `def` lacks are Corruption.
Result<ItemTable> ItemTableFrom(const WorkflowDefinition& def,
                                const std::vector<ItemRecord>& items);

// One attempt of a step, or of its compensation: what an attempt's result
// is fenced by. `path` says where the step sits in the definition (a
// top-level step's path is its name).
struct AttemptRef {
  std::string path;
  bool compensation = false;
  uint32_t attempt = 0;
  friend bool operator==(const AttemptRef&, const AttemptRef&) = default;
};

// One thing an active saga waits for.
struct Wait {
  enum class Kind {
    kNothing,  // about to advance (only between events, never stored)
    kAttempt,  // the result of attempt `attempt` of the step at `path`
    kBackoff,  // the retry timer of the step at `path`, due at due_ms
    kSleep,    // a `sleep` step's timer, due at due_ms
    kQueued,   // a free slot under the workflow's max_concurrency
    kRedrive,  // parked: its automatic replay (dlq.auto_replay) at due_ms
  };
  Kind kind = Kind::kNothing;
  // The step it waits on; "" for the saga's own waits (kQueued, kRedrive).
  std::string path;
  bool compensation = false;  // the step's compensation, not the step
  uint32_t attempt = 0;
  int64_t due_ms = 0;
  // kAttempt only: a step of another branch (or item) failed for good while
  // this attempt was in flight. Its result no longer moves the saga forward
  // (no retry, no next step), but the step's undo waits for it: a
  // compensation sent while the attempt is still on its way could overtake
  // it and leave its effect in place.
  bool stopped = false;
  friend bool operator==(const Wait&, const Wait&) = default;
};
std::string_view WaitKindName(Wait::Kind k);
// The durable timer a wait of kind `k` has; nullopt for kinds without one.
std::optional<TimerKind> TimerKindOf(Wait::Kind k);

struct Saga {
  std::string id;
  std::string workflow;
  uint32_t version = 0;
  SagaState state = SagaState::kRunning;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  uint64_t last_seq = 0;
  std::string idempotency_key;
  // The caller's correlation id (the saga id when it gave none); sent with
  // every http step as X-Correlation-ID.
  std::string correlation_id;
  // The W3C trace id (32 lower-case hex) of the trace the saga belongs to:
  // the caller's, or a fresh one. "" only for sagas started before trace
  // ids existed.
  std::string trace_id;
  // Who started it (StartRequest::started_by), asked for its cancel, and
  // replayed it last (by hand); "" = no one, or not recorded.
  std::string started_by;
  std::string cancelled_by;
  std::string replayed_by;
  // The input the saga was started with. One larger than
  // kSnapshotInputBytes is kept only in the saga_started event (log seq 1),
  // not rewritten with every snapshot (`input_in_log`); a saga read from
  // such a snapshot has a discarded `input` until LoadLoggedInput put it
  // back in the record it was read from.
  nlohmann::json input;
  bool input_in_log = false;
  std::vector<StepState> steps;
  // What it waits for, at most one wait per path: the attempts in flight
  // and the timers of its steps, or its own wait (a free slot, its
  // automatic replay). Empty between events and once it has ended, and so
  // never empty in a stored active saga.
  std::vector<Wait> waits;
  ErrorInfo failure;     // why the saga is compensating / parked
  int failed_step = -1;  // the step whose failure started compensation
  bool cancel_requested = false;
  bool compensate_on_cancel = true;
  uint32_t replay_count = 0;
  // A graceful shutdown cut its attempt off (a `checkpoint` event): the
  // next Open resumes it before the others. Cleared by its next transition.
  bool checkpointed = false;

  friend bool operator==(const Saga&, const Saga&) = default;
  // Field by field: what a commit does to put the planned saga in place
  // and keep the one it replaces (in memory the next plan reuses), for a
  // fraction of the three whole moves std::swap would make.
  friend void swap(Saga& a, Saga& b) noexcept;
};

// The error kind of a stopped step whose attempt was abandoned in flight
// (the saga parked, or the engine restarted, before its result came): its
// outcome is unknown.
inline constexpr char kAbandonedErrorKind[] = "abandoned";
// The error kind of a stopped step whose attempt never ran (it waited at a
// rate limit or an open breaker): nothing to undo.
inline constexpr char kStoppedErrorKind[] = "stopped";

// Whether undoing the step is still called for: it ran to success, or its
// outcome is unknown (its last attempt timed out, or was abandoned: the
// effect may have happened), and its compensation has not been dealt with
// yet.
bool NeedsCompensation(const StepState& st);

// The wait on the step at `path` ("" = the saga's own), or nullptr.
const Wait* FindWait(const Saga& saga, std::string_view path);

// An input whose JSON text is longer than this is kept only in the saga's
// saga_started event: a map over a large input array would otherwise
// rewrite the whole array with each item's transition.
inline constexpr size_t kSnapshotInputBytes = 1024;

// The snapshot a saga whose rows do not read (Store::ListActiveSagas) is
// parked with: its id, workflow and state as its index row says, what its
// snapshot's head still says (version, creation time, idempotency key), the
// newest seq its log holds, and a body that no engine runs: the error and
// the stored snapshot's bytes in hex, kept for whoever looks into it.
// FromRecord refuses it (Corruption with that error), so a replay is refused
// too; a purge removes it.
SagaRecord UnreadableRecord(const UnreadableSaga& unreadable);

// The snapshot record of `saga` (body = everything engine-owned, as stored:
// without the input when it is kept in the log).
SagaRecord ToRecord(const Saga& saga);
// ToRecord(saga) with the input in its body even when the snapshot keeps it
// in the log: the record given to readers (get_saga, tasks).
SagaRecord ToRecordWithInput(const Saga& saga);
// The snapshot's fields other than its body, as views of `saga`'s.
SagaHead HeadOf(const Saga& saga);
// EncodeSaga(ToRecord(saga)), the same bytes, without building the body's
// JSON: what each transition writes.
std::string EncodeSnapshot(const Saga& saga);
// The snapshot's body alone, for Transition::PutSaga to write in place.
void WriteSnapshotBody(const Saga& saga, CborWriter& w);
// Where WriteSnapshotBody put each top-level field of a body, and each
// element of a field that is a list: byte offsets from the body's start
// (they hold wherever the body is moved), so that SnapshotPatch compares
// two bodies part by part without parsing either.
struct BodyLayout {
  struct Field {
    uint32_t key = 0;    // the key's text item
    uint32_t value = 0;  // the value, which ends at `end`
    uint32_t end = 0;
    bool list = false;  // a list: its elements' offsets are in `elements`
    uint32_t first_element = 0;  // index into `elements`
    uint32_t element_count = 0;  // each ends where the next begins
  };
  std::vector<Field> fields;  // in key order, as written
  std::vector<uint32_t> elements;
  void clear() {
    fields.clear();
    elements.clear();
  }
};
// The same, noting in `layout` where each part went.
void WriteSnapshotBody(const Saga& saga, CborWriter& w, BodyLayout* layout);
// The saga in `record`, or Corruption naming the saga and the bad field.
// Snapshots before format 3 name the step they wait on by its index: `def`
// (the definition the saga runs) names it by its path; without it the path
// is "step[i]".
Result<Saga> FromRecord(const SagaRecord& record,
                        const WorkflowDefinition* def = nullptr);
// Puts the input of a saga whose snapshot keeps it in the log
// (`input_in_log`) back in `record`'s body, read from its saga_started
// event, so that FromRecord gives the whole saga; other records are left
// as they are. Reads the store: never call it on the loop thread.
// Corruption if the event is missing or holds no input.
Status LoadLoggedInput(Store& store, SagaRecord& record);
// False for a saga read from a snapshot that keeps its input in the log,
// before LoadLoggedInput: it cannot run.
inline bool HasInput(const Saga& saga) { return !saga.input.is_discarded(); }

// The idempotency key of one attempt: "<saga>/<step>/<attempt>", and
// "<saga>/<step>/compensate/<attempt>" for a compensation.
std::string AttemptKey(const std::string& saga_id, const std::string& step,
                       bool compensation, uint32_t attempt);

// The trace id of a W3C traceparent header value
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower-case hex,
// neither id all zeros), or "" if `traceparent` is not one.
std::string TraceIdOf(std::string_view traceparent);
// TraceIdOf(traceparent), or, when that is "", a fresh random trace id
// from `rng`.
std::string TraceIdFrom(std::string_view traceparent, std::mt19937_64& rng);
// `bits` random bits from `rng` as lower-case hex (bits / 4 digits), never
// all zeros: a trace id (128) or a span id (64). At most kMaxRandomHexBits.
inline constexpr int kMaxRandomHexBits = 128;
std::string RandomHexId(std::mt19937_64& rng, int bits);

}  // namespace cde

#endif  // CDE_ENGINE_SAGA_H_
