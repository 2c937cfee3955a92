#include "engine/saga.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <optional>
#include <stdexcept>

#include "engine/definition.h"
#include "storage/cbor_writer.h"
#include "storage/saga_id.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<StepStatus, std::string_view>, 5> kStepNames = {{
    {StepStatus::kPending, "pending"},
    {StepStatus::kRunning, "running"},
    {StepStatus::kSucceeded, "succeeded"},
    {StepStatus::kFailed, "failed"},
    {StepStatus::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<CompensationStatus, std::string_view>, 5>
    kCompensationNames = {{
        {CompensationStatus::kNone, "none"},
        {CompensationStatus::kRunning, "running"},
        {CompensationStatus::kSucceeded, "succeeded"},
        {CompensationStatus::kFailed, "failed"},
        {CompensationStatus::kNotDefined, "not_defined"},
    }};

// Snapshots written before the two were apart (store format 1) kept the
// compensation's progress in `status`. Read back, the step's own outcome is
// what made it need undoing: a success, or a timeout (unknown outcome).
constexpr std::array<std::pair<std::string_view, CompensationStatus>, 4>
    kFormat1CompensationStatuses = {{
        {"compensating", CompensationStatus::kRunning},
        {"compensated", CompensationStatus::kSucceeded},
        {"compensation_failed", CompensationStatus::kFailed},
        {"skipped", CompensationStatus::kNotDefined},
    }};

constexpr std::array<std::pair<Wait::Kind, std::string_view>, 6> kWaitNames = {{
    {Wait::Kind::kNothing, "nothing"},
    {Wait::Kind::kAttempt, "attempt"},
    {Wait::Kind::kBackoff, "backoff"},
    {Wait::Kind::kSleep, "sleep"},
    {Wait::Kind::kQueued, "queued"},
    {Wait::Kind::kRedrive, "redrive"},
}};

template <typename E, size_t N>
E FromName(const std::array<std::pair<E, std::string_view>, N>& table,
           const std::string& name, const char* what) {
  for (const auto& [value, n] : table) {
    if (n == name) return value;
  }
  throw std::invalid_argument(std::string("unknown ") + what + " '" + name +
                              "'");
}

// An integer field (or `fallback` when absent). get<uint32_t>() and the
// like cast a float, which is undefined behaviour when it is out of range
// (found by tests/fuzz/fuzz_record_decode); ToRecord writes integers.
template <typename T>
T IntField(const json& j, const char* key, std::optional<T> fallback = {}) {
  const auto it = j.find(key);
  if (it == j.end() && fallback) return *fallback;
  const json& v = j.at(key);
  if (v.is_number_float()) {  // other types: get() says what is wrong
    throw std::invalid_argument(std::string(key) + ": not an integer");
  }
  return v.get<T>();
}

// Sets st->status from a stored `status`, in either format's words.
void ReadStepStatus(const std::string& status, StepState* st) {
  for (const auto& [name, compensation] : kFormat1CompensationStatuses) {
    if (name == status) {
      st->compensation = compensation;
      st->status = st->error.kind == "timeout" ? StepStatus::kFailed
                                               : StepStatus::kSucceeded;
      return;
    }
  }
  st->status = FromName(kStepNames, status, "step status");
}

ErrorInfo ErrorFromJson(const json& j) {
  if (j.is_null()) return {};
  return {j.at("kind").get<std::string>(), j.at("message").get<std::string>()};
}

// The snapshot body, field by field, written to either kind of map below:
// ToRecord's JSON and EncodeSnapshot's CBOR come from this one list, so the
// two cannot drift. Keys are in byte order, the order of nlohmann::json's
// std::map, so the CBOR is byte for byte to_cbor(ToRecord(s).body).
template <typename Map>
void WriteError(Map& m, std::string_view key, const ErrorInfo& e) {
  m.Map(key, [&e](auto& j) {
    j.Str("kind", e.kind);
    j.Str("message", e.message);
  });
}

template <typename Map>
void WriteStep(const StepState& st, Map& j) {
  j.Uint("attempts", st.attempts);
  if (st.attempts_base != 0) j.Uint("attempts_base", st.attempts_base);
  if (st.compensation != CompensationStatus::kNone) {
    j.Str("compensation", CompensationStatusName(st.compensation));
  }
  if (st.compensation_attempts != 0) {
    j.Uint("compensation_attempts", st.compensation_attempts);
  }
  if (st.compensation_attempts_base != 0) {
    j.Uint("compensation_attempts_base", st.compensation_attempts_base);
  }
  if (!st.compensation_error.empty()) {
    WriteError(j, "compensation_error", st.compensation_error);
  }
  if (!st.error.empty()) WriteError(j, "error", st.error);
  if (st.finished_ms != 0) j.Int("finished_ms", st.finished_ms);
  if (st.map.began) {
    const MapProgress& mp = st.map;
    j.Map("map", [&mp](auto& m) {
      m.Uint("failed", mp.failed);
      m.Uint("items", mp.items);
      m.Uint("next", mp.next);
      m.Uint("running", mp.running);
      m.Uint("started", mp.started);
      m.Uint("succeeded", mp.succeeded);
      if (mp.undo_began) {
        m.Uint("undo_left", mp.undo_left);
        m.Uint("undoing", mp.undoing);
      }
    });
  }
  if (!st.output.is_null()) j.Json("output", st.output);
  if (st.started_ms != 0) j.Int("started_ms", st.started_ms);
  j.Str("status", StepStatusName(st.status));
}

template <typename Map>
void WriteSagaBody(const Saga& s, Map& m) {
  if (s.cancel_requested) {
    m.Map("cancel",
          [&s](auto& j) { j.Bool("compensate", s.compensate_on_cancel); });
  }
  if (!s.cancelled_by.empty()) m.Str("cancelled_by", s.cancelled_by);
  if (s.checkpointed) m.Bool("checkpointed", true);
  if (!s.correlation_id.empty()) m.Str("correlation_id", s.correlation_id);
  if (!s.failure.empty()) {
    m.Int("failed_step", s.failed_step);
    WriteError(m, "failure", s.failure);
  }
  if (s.input_in_log) {
    m.Bool("input_in_log", true);
  } else {
    m.Json("input", s.input);
  }
  if (s.replay_count != 0) m.Uint("replay_count", s.replay_count);
  if (!s.replayed_by.empty()) m.Str("replayed_by", s.replayed_by);
  if (!s.started_by.empty()) m.Str("started_by", s.started_by);
  m.Array("steps", s.steps.size(), [&s](auto& steps) {
    for (const StepState& st : s.steps) {
      steps.Map([&st](auto& j) { WriteStep(st, j); });
    }
  });
  if (!s.trace_id.empty()) m.Str("trace_id", s.trace_id);
  if (!s.waits.empty()) {
    m.Array("waits", s.waits.size(), [&s](auto& waits) {
      for (const Wait& w : s.waits) {
        waits.Map([&w](auto& j) {
          if (w.attempt != 0) j.Uint("attempt", w.attempt);
          if (w.compensation) j.Bool("compensation", true);
          if (w.due_ms != 0) j.Int("due_ms", w.due_ms);
          j.Str("kind", WaitKindName(w.kind));
          if (!w.path.empty()) j.Str("path", w.path);
          if (w.stopped) j.Bool("stopped", true);
        });
      }
    });
  }
}

// A JSON object being filled in.
class JsonMap {
 public:
  explicit JsonMap(json* object) : object_(object) {}
  void Str(std::string_view key, std::string_view v) { Slot(key) = v; }
  void Uint(std::string_view key, uint64_t v) { Slot(key) = v; }
  void Int(std::string_view key, int64_t v) { Slot(key) = v; }
  void Bool(std::string_view key, bool v) { Slot(key) = v; }
  void Json(std::string_view key, const json& v) { Slot(key) = v; }
  template <typename Fill>
  void Map(std::string_view key, Fill&& fill) {
    json& sub = Slot(key) = json::object();
    JsonMap map(&sub);
    fill(map);
  }
  template <typename Fill>
  void Array(std::string_view key, size_t size, Fill&& fill) {
    json& sub = Slot(key) = json::array();
    sub.get_ref<json::array_t&>().reserve(size);
    JsonArray array{&sub};
    fill(array);
  }

 private:
  struct JsonArray {
    json* array;
    template <typename Fill>
    void Map(Fill&& fill) {
      array->push_back(json::object());
      JsonMap map(&array->back());
      fill(map);
    }
  };
  json& Slot(std::string_view key) { return (*object_)[std::string(key)]; }
  json* object_;
};

// A CBOR map being written, its size filled in when it is done. With a
// layout (the body's top level only), it notes where each part goes.
class CborMap {
 public:
  template <typename Fill>
  static void Write(CborWriter& w, Fill&& fill, BodyLayout* layout = nullptr,
                    size_t origin = 0) {
    CborMap map(w, layout, origin);
    fill(map);
    assert(map.pairs_ <= CborWriter::kMaxOpenMapPairs);
    w.CloseMap(map.head_at_, map.pairs_);
    if (layout != nullptr) map.EndField();
  }
  void Str(std::string_view key, std::string_view v) { Key(key).Text(v); }
  void Uint(std::string_view key, uint64_t v) { Key(key).Uint(v); }
  void Int(std::string_view key, int64_t v) { Key(key).Int(v); }
  void Bool(std::string_view key, bool v) { Key(key).Bool(v); }
  void Json(std::string_view key, const json& v) { Key(key).Json(v); }
  template <typename Fill>
  void Map(std::string_view key, Fill&& fill) {
    Write(Key(key), std::forward<Fill>(fill));
  }
  template <typename Fill>
  void Array(std::string_view key, size_t size, Fill&& fill) {
    Key(key).ArrayHead(size);
    CborArray array{&w_, layout_, origin_};
    if (layout_ != nullptr) {
      BodyLayout::Field& f = layout_->fields.back();
      f.list = true;
      f.first_element = static_cast<uint32_t>(layout_->elements.size());
    }
    fill(array);
    if (layout_ != nullptr) {
      BodyLayout::Field& f = layout_->fields.back();
      f.element_count =
          static_cast<uint32_t>(layout_->elements.size()) - f.first_element;
    }
  }

 private:
  struct CborArray {
    CborWriter* w;
    BodyLayout* layout;
    size_t origin;
    template <typename Fill>
    void Map(Fill&& fill) {
      if (layout != nullptr) layout->elements.push_back(Offset(*w, origin));
      Write(*w, std::forward<Fill>(fill));
    }
  };
  static uint32_t Offset(const CborWriter& w, size_t origin) {
    return static_cast<uint32_t>(w.offset() - origin);
  }
  CborMap(CborWriter& w, BodyLayout* layout, size_t origin)
      : w_(w), head_at_(w.OpenMap()), layout_(layout), origin_(origin) {}
  // The field before the next one (or the map's end) ends here.
  void EndField() {
    if (!layout_->fields.empty() && layout_->fields.back().end == 0) {
      layout_->fields.back().end = Offset(w_, origin_);
    }
  }
  CborWriter& Key(std::string_view key) {
    ++pairs_;
    if (layout_ != nullptr) {
      EndField();
      BodyLayout::Field f;
      f.key = Offset(w_, origin_);
      w_.Text(key);
      f.value = Offset(w_, origin_);
      layout_->fields.push_back(f);
      return w_;
    }
    w_.Text(key);
    return w_;
  }
  CborWriter& w_;
  size_t head_at_;
  BodyLayout* layout_;
  size_t origin_;
  uint64_t pairs_ = 0;
};

}  // namespace

std::string_view CompensationStatusName(CompensationStatus s) {
  for (const auto& [value, name] : kCompensationNames) {
    if (value == s) return name;
  }
  return "unknown";
}

std::string_view StepStatusName(StepStatus s) {
  for (const auto& [value, name] : kStepNames) {
    if (value == s) return name;
  }
  return "unknown";
}

std::vector<std::string_view> StepStatusNames() {
  std::vector<std::string_view> names;
  for (const auto& [value, name] : kStepNames) names.push_back(name);
  return names;
}

std::optional<StepStatus> StepStatusFromName(std::string_view name) {
  for (const auto& [value, n] : kStepNames) {
    if (n == name) return value;
  }
  return std::nullopt;
}

std::optional<TimerKind> TimerKindOf(Wait::Kind k) {
  switch (k) {
    case Wait::Kind::kSleep:
      return TimerKind::kSleep;
    case Wait::Kind::kBackoff:
      return TimerKind::kBackoff;
    case Wait::Kind::kRedrive:
      return TimerKind::kRedrive;
    default:
      return std::nullopt;
  }
}

std::string_view WaitKindName(Wait::Kind k) {
  for (const auto& [value, name] : kWaitNames) {
    if (value == k) return name;
  }
  return "unknown";
}

SagaHead HeadOf(const Saga& s) {
  return {s.id,         s.workflow,   s.version,  s.state,
          s.created_ms, s.updated_ms, s.last_seq, s.idempotency_key};
}

SagaRecord ToRecord(const Saga& s) {
  json body = json::object();
  JsonMap map(&body);
  WriteSagaBody(s, map);
  return {s.id,       s.workflow,        s.version,
          s.state,    s.created_ms,      s.updated_ms,
          s.last_seq, s.idempotency_key, std::move(body)};
}

SagaRecord ToRecordWithInput(const Saga& s) {
  SagaRecord r = ToRecord(s);
  if (s.input_in_log) r.body["input"] = s.input;
  return r;
}

void WriteSnapshotBody(const Saga& s, CborWriter& w) {
  CborMap::Write(w, [&s](CborMap& map) { WriteSagaBody(s, map); });
}

void WriteSnapshotBody(const Saga& s, CborWriter& w, BodyLayout* layout) {
  layout->clear();
  CborMap::Write(
      w, [&s](CborMap& map) { WriteSagaBody(s, map); }, layout, w.offset());
}

std::string EncodeSnapshot(const Saga& s) {
  return EncodeSagaWith(HeadOf(s),
                        [&s](CborWriter& w) { WriteSnapshotBody(s, w); });
}

Status LoadLoggedInput(Store& store, SagaRecord& record) {
  json& body = record.body;
  if (!body.is_object() || body.contains("input")) return Status::OK();
  const auto flag = body.find("input_in_log");
  // A malformed flag is FromRecord's to report, as Corruption.
  if (flag == body.end() || !flag->is_boolean() || !flag->get<bool>()) {
    return Status::OK();
  }
  auto events = store.ReadLog(record.id, 1, 1);
  if (!events.ok()) {
    return events.status().WithContext("reading the input of saga " +
                                       record.id);
  }
  if (events->empty() || events->front().seq != 1 ||
      events->front().type != EventKindName(EventKind::kSagaStarted) ||
      !events->front().data.contains("input")) {
    return Status::Corruption("saga '" + record.id +
                              "': its snapshot keeps its input in its "
                              "saga_started event (log seq 1), which is " +
                              (events->empty() ? "missing" : "not one"));
  }
  body["input"] = std::move(events->front().data["input"]);
  return Status::OK();
}

void swap(Saga& a, Saga& b) noexcept {
  // Every field is swapped here: one added must be too.
  static_assert(sizeof(Saga) == 440, "swap the new field of Saga here");
  using std::swap;
  swap(a.id, b.id);
  swap(a.workflow, b.workflow);
  swap(a.version, b.version);
  swap(a.state, b.state);
  swap(a.created_ms, b.created_ms);
  swap(a.updated_ms, b.updated_ms);
  swap(a.last_seq, b.last_seq);
  swap(a.idempotency_key, b.idempotency_key);
  swap(a.correlation_id, b.correlation_id);
  swap(a.trace_id, b.trace_id);
  swap(a.started_by, b.started_by);
  swap(a.cancelled_by, b.cancelled_by);
  swap(a.replayed_by, b.replayed_by);
  swap(a.input, b.input);
  swap(a.input_in_log, b.input_in_log);
  swap(a.steps, b.steps);
  swap(a.waits, b.waits);
  swap(a.failure, b.failure);
  swap(a.failed_step, b.failed_step);
  swap(a.cancel_requested, b.cancel_requested);
  swap(a.compensate_on_cancel, b.compensate_on_cancel);
  swap(a.replay_count, b.replay_count);
  swap(a.checkpointed, b.checkpointed);
}

bool NeedsCompensation(const StepState& st) {
  if (st.compensation != CompensationStatus::kNone) return false;  // handled
  if (st.status == StepStatus::kSucceeded) return true;
  if (st.status == StepStatus::kCancelled) {
    return st.error.kind == kAbandonedErrorKind;
  }
  return (st.status == StepStatus::kFailed ||
          st.status == StepStatus::kRunning) &&
         (st.error.kind == "timeout" || st.error.kind == kAbandonedErrorKind);
}

const Wait* FindWait(const Saga& saga, std::string_view path) {
  for (const Wait& w : saga.waits) {
    if (w.path == path) return &w;
  }
  return nullptr;
}

namespace {

StepState ReadStep(const json& j) {
  StepState st;
  const std::string status = j.at("status").get<std::string>();
  if (auto it = j.find("compensation"); it != j.end()) {
    st.compensation = FromName(kCompensationNames, it->get<std::string>(),
                               "compensation status");
  }
  st.attempts = IntField<uint32_t>(j, "attempts");
  st.compensation_attempts = IntField<uint32_t>(j, "compensation_attempts", 0u);
  st.attempts_base = IntField<uint32_t>(j, "attempts_base", 0u);
  st.compensation_attempts_base =
      IntField<uint32_t>(j, "compensation_attempts_base", 0u);
  if (auto it = j.find("output"); it != j.end()) st.output = *it;
  if (auto it = j.find("error"); it != j.end()) st.error = ErrorFromJson(*it);
  if (auto it = j.find("compensation_error"); it != j.end()) {
    st.compensation_error = ErrorFromJson(*it);
  }
  st.started_ms = IntField<int64_t>(j, "started_ms", 0);
  st.finished_ms = IntField<int64_t>(j, "finished_ms", 0);
  if (auto it = j.find("map"); it != j.end()) {
    MapProgress& mp = st.map;
    const json& m = *it;
    mp.began = true;
    mp.items = IntField<uint32_t>(m, "items");
    mp.next = IntField<uint32_t>(m, "next");
    mp.started = IntField<uint32_t>(m, "started");
    mp.running = IntField<uint32_t>(m, "running");
    mp.succeeded = IntField<uint32_t>(m, "succeeded");
    mp.failed = IntField<uint32_t>(m, "failed");
    if (m.contains("undo_left")) {
      mp.undo_began = true;
      mp.undo_left = IntField<uint32_t>(m, "undo_left");
      mp.undoing = IntField<uint32_t>(m, "undoing");
    }
    // Loops run to these counts: a damaged one must not make a plan walk
    // billions of items (or reserve room for them).
    if (mp.items > kMaxMapItems || mp.next > mp.started ||
        mp.started > mp.items || mp.undo_left > mp.started ||
        mp.running > mp.started || mp.undoing > mp.started ||
        mp.succeeded > mp.started) {
      throw std::invalid_argument("map progress out of range");
    }
  }
  ReadStepStatus(status, &st);
  return st;
}

}  // namespace

json ItemToJson(const ItemState& item) {
  json body = json::object();
  JsonMap m(&body);
  if (item.compensation != CompensationStatus::kNone) {
    m.Str("compensation", CompensationStatusName(item.compensation));
  }
  if (!item.error.empty()) WriteError(m, "error", item.error);
  m.Str("status", StepStatusName(item.status));
  m.Array("steps", item.steps.size(), [&item](auto& steps) {
    for (const StepState& st : item.steps) {
      steps.Map([&st](auto& j) { WriteStep(st, j); });
    }
  });
  return body;
}

Result<ItemState> ItemFromJson(const json& body, const std::string& where) {
  ItemState item;
  try {
    item.status = FromName(kStepNames, body.at("status").get<std::string>(),
                           "item status");
    if (auto it = body.find("compensation"); it != body.end()) {
      item.compensation = FromName(kCompensationNames, it->get<std::string>(),
                                   "compensation status");
    }
    if (auto it = body.find("error"); it != body.end()) {
      item.error = ErrorFromJson(*it);
    }
    for (const json& j : body.at("steps")) item.steps.push_back(ReadStep(j));
  } catch (const std::exception& e) {
    return Status::Corruption(where + ": bad item: " + e.what());
  }
  return item;
}

namespace {

// How a Corruption names an item row: "saga 'ID' item fan[3]".
std::string RowWhere(const ItemRecord& row) {
  return "saga '" + row.saga_id + "' item " + row.map_path + "[" +
         std::to_string(row.index) + "]";
}

Status NoMapStepThere(const WorkflowDefinition& def, const ItemRecord& row) {
  return Status::Corruption(RowWhere(row) + ": workflow " + def.name + "@" +
                            std::to_string(def.version) +
                            " has no map step there");
}

}  // namespace

Result<ItemState> ItemFromRow(const WorkflowDefinition& def, int map,
                              const ItemRecord& row) {
  const std::string where = RowWhere(row);
  if (map < 0 || static_cast<size_t>(map) >= def.steps.size() ||
      def.steps[static_cast<size_t>(map)].kind != StepKind::kMap) {
    return NoMapStepThere(def, row);
  }
  if (row.index >= kMaxMapItems) {
    return Status::Corruption(where + ": index out of range");
  }
  auto item = ItemFromJson(row.body, where);
  if (!item.ok()) return item.status();
  const size_t size =
      static_cast<size_t>(def.steps[static_cast<size_t>(map)].map.size);
  if (item->steps.size() != size) {
    return Status::Corruption(
        where + ": " + std::to_string(item->steps.size()) +
        " step states, the map step has " + std::to_string(size) + " steps");
  }
  return item;
}

Result<MapInstance> MapInstanceOfRow(const WorkflowDefinition& def,
                                     const ItemRecord& row) {
  const StepInstance at = InstanceAt(def, row.map_path);
  if (at.step < 0 ||
      def.steps[static_cast<size_t>(at.step)].kind != StepKind::kMap ||
      (at.item < 0 && def.steps[static_cast<size_t>(at.step)].in_map >= 0)) {
    return NoMapStepThere(def, row);
  }
  MapInstance map{at.step, at.outer};
  if (at.item >= 0) map.outer.push_back(static_cast<uint32_t>(at.item));
  return map;
}

Result<ItemTable> ItemTableFrom(const WorkflowDefinition& def,
                                const std::vector<ItemRecord>& items) {
  ItemTable table;
  for (const ItemRecord& row : items) {
    auto map = MapInstanceOfRow(def, row);
    if (!map.ok()) return map.status();
    auto item = ItemFromRow(def, map->map, row);
    if (!item.ok()) return item.status();
    std::vector<ItemState>& list = table[*map];
    if (list.size() <= row.index) list.resize(row.index + 1);
    list[row.index] = std::move(item).value();
  }
  return table;
}

namespace {
// The body field of an unreadable saga's parked snapshot.
constexpr char kUnreadableField[] = "unreadable";

std::string HexOf(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}
}  // namespace

SagaRecord UnreadableRecord(const UnreadableSaga& u) {
  SagaRecord r;
  if (u.head) {
    r = *u.head;
  } else {
    r.created_ms = SagaIdTimeMs(u.id).value_or(0);
    r.updated_ms = r.created_ms;
  }
  // The index row's workflow and state, whatever the head says: they name
  // the index row that the parked one replaces.
  r.id = u.id;
  r.workflow = u.workflow;
  r.state = u.state;
  r.last_seq = std::max(r.last_seq, u.last_seq);
  r.patchable = false;
  r.body = {
      {kUnreadableField,
       {{"error", u.error.message()}, {"snapshot_hex", HexOf(u.snapshot)}}}};
  return r;
}

Result<Saga> FromRecord(const SagaRecord& r, const WorkflowDefinition* def) {
  Saga s;
  s.id = r.id;
  s.workflow = r.workflow;
  s.version = r.version;
  s.state = r.state;
  s.created_ms = r.created_ms;
  s.updated_ms = r.updated_ms;
  s.last_seq = r.last_seq;
  s.idempotency_key = r.idempotency_key;
  if (auto it = r.body.find(kUnreadableField); it != r.body.end()) {
    return Status::Corruption(
        "saga '" + r.id + "' was set aside unreadable: " +
        (it->is_object() ? it->value("error", std::string("no error noted"))
                         : std::string("no error noted")));
  }
  try {
    const json& b = r.body;
    s.input_in_log = b.value("input_in_log", false);
    if (auto it = b.find("input"); it != b.end() || !s.input_in_log) {
      s.input = b.at("input");
    } else {
      s.input = json(json::value_t::discarded);  // LoadLoggedInput reads it
    }
    for (const json& j : b.at("steps")) s.steps.push_back(ReadStep(j));
    if (auto it = b.find("waits"); it != b.end()) {
      for (const json& j : *it) {
        Wait w;
        w.kind =
            FromName(kWaitNames, j.at("kind").get<std::string>(), "wait kind");
        w.path = j.value("path", std::string());
        w.compensation = j.value("compensation", false);
        w.attempt = IntField<uint32_t>(j, "attempt", 0u);
        w.due_ms = IntField<int64_t>(j, "due_ms", int64_t{0});
        w.stopped = j.value("stopped", false);
        s.waits.push_back(std::move(w));
      }
    } else if (auto it = b.find("wait"); it != b.end()) {
      // Formats 1 and 2: one wait, on a step named by its index.
      const json& j = *it;
      Wait w;
      w.kind =
          FromName(kWaitNames, j.at("kind").get<std::string>(), "wait kind");
      const int step = IntField<int>(j, "step");
      if (step >= 0) {
        const bool named =
            def != nullptr && static_cast<size_t>(step) < def->steps.size();
        w.path = named ? def->steps[static_cast<size_t>(step)].name
                       : "step[" + std::to_string(step) + "]";
      }
      w.compensation = j.at("compensation").get<bool>();
      w.attempt = IntField<uint32_t>(j, "attempt");
      w.due_ms = IntField<int64_t>(j, "due_ms");
      if (w.kind != Wait::Kind::kNothing) s.waits.push_back(std::move(w));
    }
    if (auto it = b.find("failure"); it != b.end()) {
      s.failure = ErrorFromJson(*it);
      s.failed_step = IntField<int>(b, "failed_step");
    }
    s.correlation_id = b.value("correlation_id", std::string());
    s.trace_id = b.value("trace_id", std::string());  // older: none
    s.started_by = b.value("started_by", std::string());
    s.cancelled_by = b.value("cancelled_by", std::string());
    s.replayed_by = b.value("replayed_by", std::string());
    if (auto it = b.find("cancel"); it != b.end()) {
      s.cancel_requested = true;
      s.compensate_on_cancel = it->at("compensate").get<bool>();
    }
    s.replay_count = IntField<uint32_t>(b, "replay_count", 0u);
    s.checkpointed = b.value("checkpointed", false);
  } catch (const std::exception& e) {
    return Status::Corruption("saga '" + r.id +
                              "': bad snapshot body: " + e.what());
  }
  return s;
}

std::string AttemptKey(const std::string& saga_id, const std::string& step,
                       bool compensation, uint32_t attempt) {
  // Built in one buffer: this runs for every attempt.
  char digits[10];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, attempt);
  std::string key;
  key.reserve(saga_id.size() + step.size() + 13 + (end - digits));
  key.append(saga_id).append(1, '/').append(step).append(1, '/');
  if (compensation) key.append("compensate/");
  key.append(digits, end);
  return key;
}

namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZeros(std::string_view s) {
  return s.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

std::string TraceIdOf(std::string_view tp) {
  // Version 00 is exactly 55 characters: 00-trace-parent-flags.
  if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') {
    return "";
  }
  const std::string_view version = tp.substr(0, 2);
  const std::string_view trace = tp.substr(3, 32);
  const std::string_view parent = tp.substr(36, 16);
  const std::string_view flags = tp.substr(53, 2);
  if (version != "00" || !IsLowerHex(trace) || !IsLowerHex(parent) ||
      !IsLowerHex(flags) || AllZeros(trace) || AllZeros(parent)) {
    return "";
  }
  return std::string(trace);
}

std::string TraceIdFrom(std::string_view traceparent, std::mt19937_64& rng) {
  std::string id = TraceIdOf(traceparent);
  return id.empty() ? RandomHexId(rng, 128) : id;
}

std::string RandomHexId(std::mt19937_64& rng, int bits) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Written into a buffer and made a string once: one allocation, where
  // a character at a time grew the string twice (a trace id per start).
  char hex[kMaxRandomHexBits / 4];
  const int digits = std::min(bits, kMaxRandomHexBits) / 4;
  std::string_view id;
  do {
    int n = 0;
    for (int left = digits * 4; left > 0; left -= 64) {
      uint64_t word = rng();
      for (int i = 0; i < std::min(left, 64) / 4; ++i, word >>= 4) {
        hex[n++] = kHex[word & 15];
      }
    }
    id = std::string_view(hex, static_cast<size_t>(n));
  } while (AllZeros(id));
  return std::string(id);
}

}  // namespace cde
