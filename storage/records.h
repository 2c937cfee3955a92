// The records the store keeps, and their on-disk encoding.
//
// Every value is one version byte (kRecordVersion) followed by a CBOR map
// (nlohmann::json::to_cbor). Enums are stored by explicit name, never by
// ordinal, so reordering an enum cannot silently change what is on disk.
// docs/storage-format.md is the specification; keep the two in step.
#ifndef CDE_STORAGE_RECORDS_H_
#define CDE_STORAGE_RECORDS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "storage/status.h"

namespace cde {

// The value encoding version written as the first byte of every record.
inline constexpr uint8_t kRecordVersion = 1;

// The on-disk format version kept in the `meta` column family. A store whose
// format version is newer than this build's is refused at open; an older one
// is upgraded by its first read-write user (docs/storage-format.md, "Format
// versions"). 2: a saga step's compensation has a status of its own. 3: a
// saga's waits are a list naming steps by path; step timer rows are named
// "<kind>:<path>". 4: the items of map steps, one row each in `items`.
// 5: a snapshot may keep its saga's input in the saga's first log event
// instead (`input_in_log`), which an older build would not read. 6: a log
// row may hold all the events of one transition, keyed by the last one's
// seq (DecodeLogRow). 7: one saga index (idx_workflow_state). 8: a
// transition may write, instead of the saga's snapshot, a patch of it in
// its log row (DecodeLogRowWithPatch, ApplySnapshotPatch).
inline constexpr uint32_t kFormatVersion = 8;

// Saga lifecycle (PRODUCT.md). The byte codes are part of the index key
// format: never renumber, never reuse a retired code.
enum class SagaState : uint8_t {
  kRunning = 1,
  kCompensating = 2,
  kCompleted = 3,
  kCompensated = 4,
  kParked = 5,
  kCancelling = 6,
  kCancelled = 7,
};

// Every state, in code order.
inline constexpr std::array<SagaState, 7> kAllSagaStates = {
    SagaState::kRunning,     SagaState::kCompensating, SagaState::kCompleted,
    SagaState::kCompensated, SagaState::kParked,       SagaState::kCancelling,
    SagaState::kCancelled};

std::string_view SagaStateName(SagaState state);
std::optional<SagaState> SagaStateFromName(std::string_view name);
std::optional<SagaState> SagaStateFromCode(uint8_t code);
// completed, compensated and cancelled: a saga in these states never changes.
bool IsTerminal(SagaState state);
// running, compensating and cancelling: the engine must drive these sagas
// after a restart. Parked sagas wait for an operator instead.
bool IsActive(SagaState state);

// The snapshot of one saga: its state after the last logged event. The store
// reads the indexed fields; `body` belongs to the engine (input, per-step
// status, outputs) and is stored as given.
struct SagaRecord {
  std::string id;
  std::string workflow;
  uint32_t version = 0;
  SagaState state = SagaState::kRunning;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  uint64_t last_seq = 0;        // seq of the newest log event
  std::string idempotency_key;  // empty when the start had none
  nlohmann::json body = nlohmann::json::object();
  // Written by a transition whose successors may write patches of it into
  // their log rows instead of a snapshot (format 8): readers apply those
  // after it. Without it no patch follows, and readers need not look.
  bool patchable = false;

  friend bool operator==(const SagaRecord&, const SagaRecord&) = default;
};

// One event of a saga's log. `type` names the transition ("saga_started",
// "step_succeeded", ...); the engine owns the set and documents it.
struct LogRecord {
  std::string saga_id;
  uint64_t seq = 0;  // 1, 2, 3... per saga, without gaps
  int64_t time_ms = 0;
  std::string type;
  nlohmann::json data = nlohmann::json::object();

  friend bool operator==(const LogRecord&, const LogRecord&) = default;
};

// A parked saga.
struct DlqRecord {
  std::string saga_id;
  std::string workflow;
  uint32_t version = 0;
  std::string reason;  // "step_failed", "compensation_failed", "poison"
  std::string step;
  std::string last_error;
  uint32_t attempts = 0;
  int64_t parked_ms = 0;
  uint32_t replay_count = 0;

  friend bool operator==(const DlqRecord&, const DlqRecord&) = default;
};

// A durable timer: a retry backoff, a `sleep`, a redrive. `name` tells apart
// timers of one saga that fall due in the same millisecond.
struct TimerRecord {
  int64_t due_ms = 0;
  std::string saga_id;
  std::string name;
  nlohmann::json data = nlohmann::json::object();

  friend bool operator==(const TimerRecord&, const TimerRecord&) = default;
};

// A registered workflow definition version (immutable once written).
// Who registered a definition, and so how far its steps are trusted (the
// engine's action policy): an operator (the --workflows directory,
// cde-admin, the C++ API) or a client (MCP or HTTP registration, on behalf
// of an agent that may be prompt-injected).
enum class DefinitionOrigin : uint8_t { kOperator, kClient };
std::string_view DefinitionOriginName(DefinitionOrigin origin);
std::optional<DefinitionOrigin> DefinitionOriginFromName(std::string_view name);

struct DefinitionRecord {
  std::string name;
  uint32_t version = 0;
  int64_t registered_ms = 0;
  nlohmann::json definition = nlohmann::json::object();
  // Records written before origins were kept read as kClient: the least
  // trusted, until an operator registers the same content again.
  DefinitionOrigin origin = DefinitionOrigin::kOperator;
  // Who registered it: a token's name, "local", "workflows_dir"; "" = not
  // recorded (the C++ API, records from before it was kept).
  std::string registered_by;

  friend bool operator==(const DefinitionRecord&,
                         const DefinitionRecord&) = default;
};

// The state of one item of a map step (keys.h, ItemKey). `body` belongs to
// the engine, as a snapshot's does.
struct ItemRecord {
  std::string saga_id;
  std::string map_path;
  uint32_t index = 0;
  nlohmann::json body = nlohmann::json::object();
  friend bool operator==(const ItemRecord&, const ItemRecord&) = default;
};

// A saga snapshot's fields other than its body, as views of the owner's.
struct SagaHead {
  std::string_view id;
  std::string_view workflow;
  uint32_t version = 0;
  SagaState state = SagaState::kRunning;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  uint64_t last_seq = 0;
  std::string_view idempotency_key;
  bool patchable = false;
};
SagaHead HeadOf(const SagaRecord& rec);

class CborWriter;

// Encoders never fail. Decoders return Corruption with `where` (column family
// and key, as the caller knows them) in the message.
std::string EncodeSaga(const SagaRecord& rec);
// The same record with its body written by `write_body` as one CBOR data
// item: the engine's path for the snapshot of every transition, which
// builds no JSON of the body. A body written as nlohmann::json::to_cbor
// writes rec.body gives the same bytes as EncodeSaga(rec).
std::string EncodeSagaWith(const SagaHead& head,
                           const std::function<void(CborWriter&)>& write_body);
// The same, appended to `out`: the engine writes records straight into
// its transition's buffer.
void AppendSagaWith(std::string* out, const SagaHead& head,
                    const std::function<void(CborWriter&)>& write_body);
std::string EncodeLog(const LogRecord& rec);
// A log row holding `events` (at least one; consecutive seqs of one saga),
// the row of LogKey(saga_id, last seq): one event is EncodeLog's value, more
// are a CBOR array of their maps behind one version byte.
std::string EncodeLogRow(const std::vector<LogRecord>& events);
// Writes a log row's value into `out` event by event, without a
// LogRecord: Add exactly `events` times, oldest first. With a snapshot
// patch (format 8) the row is a CBOR map {"events": [...], "patch": {...}}:
// then call Patch once, after the events.
class LogRowWriter {
 public:
  LogRowWriter(std::string* out, size_t events, bool with_patch = false);
  void Add(std::string_view saga_id, uint64_t seq, int64_t time_ms,
           std::string_view type, const nlohmann::json& data);
  // The same, with the event's data written by `write_data(context, w)`:
  // exactly one CBOR data item (the engine's event data, not built as JSON).
  using WriteData = void (*)(const void* context, CborWriter& w);
  void Add(std::string_view saga_id, uint64_t seq, int64_t time_ms,
           std::string_view type, WriteData write_data, const void* context);
  // The row's snapshot patch (see ApplySnapshotPatch), one CBOR map written
  // by `write_patch(context, w)`.
  void Patch(WriteData write_patch, const void* context);

 private:
  std::string* out_;
};
std::string EncodeDlq(const DlqRecord& rec);
std::string EncodeTimer(const TimerRecord& rec);
std::string EncodeDefinition(const DefinitionRecord& rec);
std::string EncodeIdempotency(std::string_view saga_id);
std::string EncodeFormatVersion(uint32_t version);
// An item row's value: its body (a JSON object), framed as every record.
std::string EncodeItem(const nlohmann::json& body);

Result<SagaRecord> DecodeSaga(std::string_view value, std::string_view where);
Result<LogRecord> DecodeLog(std::string_view value, std::string_view where);
// The events of a log row, either form, oldest first. Corruption unless
// they are consecutive seqs of one saga.
Result<std::vector<LogRecord>> DecodeLogRow(std::string_view value,
                                            std::string_view where);
// A log row's events and, if its transition wrote a patch of the saga's
// snapshot instead of the whole snapshot (format 8), that patch.
struct LogRow {
  std::vector<LogRecord> events;
  std::optional<nlohmann::json> snapshot_patch;
};
Result<LogRow> DecodeLogRowWithPatch(std::string_view value,
                                     std::string_view where);
// Brings `rec` (the saga's state before a row) to its state after the row
// whose last event is `last_seq`, by the row's snapshot patch: a CBOR map
//   "set":        {field: value}          body fields replaced or added
//   "unset":      [field]                 body fields removed
//   "elements":   {field: [[index, value]]}  elements of body arrays
//                                            replaced, applied after "set"
//   "updated_ms": integer                 the snapshot's new updated_ms
// Any other change of the head (state, version, ...) is a whole snapshot.
// Corruption, naming `where`, if the patch is malformed or does not fit the
// body; `rec` is then unspecified.
Status ApplySnapshotPatch(const nlohmann::json& patch, uint64_t last_seq,
                          SagaRecord* rec, std::string_view where);
Result<DlqRecord> DecodeDlq(std::string_view value, std::string_view where);
Result<TimerRecord> DecodeTimer(std::string_view value, std::string_view where);
Result<DefinitionRecord> DecodeDefinition(std::string_view value,
                                          std::string_view where);
Result<std::string> DecodeIdempotency(std::string_view value,
                                      std::string_view where);
// The body of an item row.
Result<nlohmann::json> DecodeItem(std::string_view value,
                                  std::string_view where);
Result<uint32_t> DecodeFormatVersion(std::string_view value,
                                     std::string_view where);

}  // namespace cde

#endif  // CDE_STORAGE_RECORDS_H_
