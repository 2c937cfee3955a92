#include "storage/records.h"

#include <array>

#include "storage/cbor_writer.h"
#include "storage/json_depth.h"
#include "storage/keys.h"

namespace cde {
namespace {

using nlohmann::json;

struct StateName {
  SagaState state;
  std::string_view name;
};
constexpr std::array<StateName, 7> kStateNames = {{
    {SagaState::kRunning, "running"},
    {SagaState::kCompensating, "compensating"},
    {SagaState::kCompleted, "completed"},
    {SagaState::kCompensated, "compensated"},
    {SagaState::kParked, "parked"},
    {SagaState::kCancelling, "cancelling"},
    {SagaState::kCancelled, "cancelled"},
}};

// The Corruption of a record at `where` that does not decode, and why.
Status Undecodable(std::string_view where, std::string_view kind,
                   std::string_view what) {
  std::string msg(where);
  msg += ": undecodable ";
  msg += kind;
  msg += " record: ";
  msg += what;
  return Status::Corruption(msg);
}

// The version byte and the CBOR data item behind it.
Result<json> ParseFrame(std::string_view value, std::string_view where,
                        std::string_view kind) {
  auto corrupt = [&](std::string_view what) {
    return Undecodable(where, kind, what);
  };
  if (value.empty()) return corrupt("empty value");
  const auto version = static_cast<uint8_t>(value[0]);
  if (version != kRecordVersion) {
    return corrupt("record version " + std::to_string(version) +
                   ", this build reads version " +
                   std::to_string(kRecordVersion));
  }
  // nlohmann's CBOR reader recurses once per level: a corrupt value must not
  // overflow the stack. What the engine writes stays far below the limit.
  if (const size_t depth = CborDepth(value.substr(1));
      depth > kMaxRecordDepth) {
    return corrupt(TooDeepMessage(depth, kMaxRecordDepth));
  }
  json j;
  try {
    j = json::from_cbor(value.begin() + 1, value.end(), /*strict=*/true,
                        /*allow_exceptions=*/false);
  } catch (const json::exception& e) {
    // Even with allow_exceptions = false, nlohmann::json throws for an
    // array or map whose declared length exceeds max_size() (found by
    // tests/fuzz/fuzz_record_decode).
    return corrupt(std::string("invalid CBOR: ") + e.what());
  }
  if (j.is_discarded()) return corrupt("invalid CBOR");
  return j;
}

// Fills a T from the CBOR map `j`; a missing or mistyped field is
// Corruption naming `where`.
template <typename T, typename Fill>
Result<T> FillFrom(const json& j, std::string_view where, std::string_view kind,
                   Fill fill) {
  if (!j.is_object()) return Undecodable(where, kind, "not a CBOR map");
  try {
    T rec;
    fill(j, rec);
    return rec;
  } catch (const json::exception& e) {
    return Undecodable(where, kind, e.what());
  } catch (const std::invalid_argument& e) {
    return Undecodable(where, kind, e.what());
  }
}

// Parses the version byte and the CBOR map, then lets `fill` read fields.
template <typename T, typename Fill>
Result<T> Unframe(std::string_view value, std::string_view where,
                  std::string_view kind, Fill fill) {
  auto j = ParseFrame(value, where, kind);
  CDE_RETURN_IF_ERROR(j.status());
  return FillFrom<T>(*j, where, kind, fill);
}

// An integer field. get<uint32_t>() and the like cast a float, which is
// undefined behaviour when it is out of range (found by
// tests/fuzz/fuzz_record_decode): our encoders write integers, so anything
// else is corruption.
template <typename T>
T IntField(const json& j, const char* key) {
  const json& v = j.at(key);
  if (v.is_number_float()) {  // other types: get() says what is wrong
    throw std::invalid_argument(std::string(key) + ": not an integer");
  }
  return v.get<T>();
}

SagaState StateField(const json& j, const char* key) {
  const auto& name = j.at(key).get_ref<const std::string&>();
  auto state = SagaStateFromName(name);
  if (!state) throw std::invalid_argument("unknown saga state '" + name + "'");
  return *state;
}

}  // namespace

std::string_view SagaStateName(SagaState state) {
  for (const auto& s : kStateNames) {
    if (s.state == state) return s.name;
  }
  return "unknown";
}

std::optional<SagaState> SagaStateFromName(std::string_view name) {
  for (const auto& s : kStateNames) {
    if (s.name == name) return s.state;
  }
  return std::nullopt;
}

std::optional<SagaState> SagaStateFromCode(uint8_t code) {
  for (const auto& s : kStateNames) {
    if (static_cast<uint8_t>(s.state) == code) return s.state;
  }
  return std::nullopt;
}

bool IsTerminal(SagaState state) {
  return state == SagaState::kCompleted || state == SagaState::kCompensated ||
         state == SagaState::kCancelled;
}

bool IsActive(SagaState state) {
  return state == SagaState::kRunning || state == SagaState::kCompensating ||
         state == SagaState::kCancelling;
}

SagaHead HeadOf(const SagaRecord& r) {
  return {r.id,         r.workflow, r.version,         r.state,    r.created_ms,
          r.updated_ms, r.last_seq, r.idempotency_key, r.patchable};
}

std::string EncodeSagaWith(const SagaHead& h,
                           const std::function<void(CborWriter&)>& write_body) {
  std::string out;
  out.reserve(256 + h.id.size() + h.workflow.size() + h.idempotency_key.size());
  AppendSagaWith(&out, h, write_body);
  return out;
}

void AppendSagaWith(std::string* out, const SagaHead& h,
                    const std::function<void(CborWriter&)>& write_body) {
  CborWriter w(out, kRecordVersion, h.patchable ? 10 : 9);
  w.Field("id", h.id)
      .Field("workflow", h.workflow)
      .Field("version", h.version)
      .Field("state", SagaStateName(h.state))
      .Field("created_ms", h.created_ms)
      .Field("updated_ms", h.updated_ms)
      .Field("last_seq", h.last_seq)
      .Field("idempotency_key", h.idempotency_key);
  if (h.patchable) {
    w.Text("patchable");
    w.Bool(true);
  }
  w.Text("body");
  write_body(w);
}

std::string EncodeSaga(const SagaRecord& r) {
  return EncodeSagaWith(HeadOf(r), [&](CborWriter& w) { w.Json(r.body); });
}

Result<SagaRecord> DecodeSaga(std::string_view value, std::string_view where) {
  return Unframe<SagaRecord>(value, where, "saga", [](const json& j, auto& r) {
    r.id = j.at("id").get<std::string>();
    r.workflow = j.at("workflow").get<std::string>();
    r.version = IntField<uint32_t>(j, "version");
    r.state = StateField(j, "state");
    r.created_ms = IntField<int64_t>(j, "created_ms");
    r.updated_ms = IntField<int64_t>(j, "updated_ms");
    r.last_seq = IntField<uint64_t>(j, "last_seq");
    r.idempotency_key = j.at("idempotency_key").get<std::string>();
    if (const auto it = j.find("patchable"); it != j.end()) {
      r.patchable = it->get<bool>();
    }
    r.body = j.at("body");
  });
}

std::string EncodeLog(const LogRecord& r) {
  std::string out;
  out.reserve(64 + r.saga_id.size() + r.type.size());
  LogRowWriter(&out, 1).Add(r.saga_id, r.seq, r.time_ms, r.type, r.data);
  return out;
}

LogRowWriter::LogRowWriter(std::string* out, size_t events, bool with_patch)
    : out_(out) {
  out_->push_back(static_cast<char>(kRecordVersion));
  CborWriter w(out_);
  if (with_patch) {
    w.MapHead(2);
    w.Text("events");
    w.ArrayHead(events);
  } else if (events > 1) {
    w.ArrayHead(events);
  }
}

void LogRowWriter::Patch(WriteData write_patch, const void* context) {
  CborWriter w(out_);
  w.Text("patch");
  write_patch(context, w);
}

void LogRowWriter::Add(std::string_view saga_id, uint64_t seq, int64_t time_ms,
                       std::string_view type, const nlohmann::json& data) {
  Add(
      saga_id, seq, time_ms, type,
      [](const void* json, CborWriter& w) {
        w.Json(*static_cast<const nlohmann::json*>(json));
      },
      &data);
}

void LogRowWriter::Add(std::string_view saga_id, uint64_t seq, int64_t time_ms,
                       std::string_view type, WriteData write_data,
                       const void* context) {
  CborWriter w(out_);
  w.MapHead(5);
  w.Field("saga_id", saga_id)
      .Field("seq", seq)
      .Field("time_ms", time_ms)
      .Field("type", type);
  w.Text("data");
  write_data(context, w);
}

namespace {
void FillLog(const json& j, LogRecord& r) {
  r.saga_id = j.at("saga_id").get<std::string>();
  r.seq = IntField<uint64_t>(j, "seq");
  r.time_ms = IntField<int64_t>(j, "time_ms");
  r.type = j.at("type").get<std::string>();
  r.data = j.at("data");
}
}  // namespace

Result<LogRecord> DecodeLog(std::string_view value, std::string_view where) {
  return Unframe<LogRecord>(value, where, "log", FillLog);
}

std::string EncodeLogRow(const std::vector<LogRecord>& events) {
  std::string out;
  LogRowWriter row(&out, events.size());
  for (const LogRecord& e : events) {
    row.Add(e.saga_id, e.seq, e.time_ms, e.type, e.data);
  }
  return out;
}

namespace {

// The events of a row, consecutive seqs of one saga.
Status FillEvents(const json& list, std::string_view where,
                  std::vector<LogRecord>* events) {
  for (const json& e : list) {
    auto next = FillFrom<LogRecord>(e, where, "log", FillLog);
    CDE_RETURN_IF_ERROR(next.status());
    if (!events->empty() && (next->saga_id != events->back().saga_id ||
                             next->seq != events->back().seq + 1)) {
      return Undecodable(
          where, "log",
          "event seq " + std::to_string(next->seq) + " does not follow seq " +
              std::to_string(events->back().seq) + " of the same saga");
    }
    events->push_back(std::move(next).value());
  }
  return Status::OK();
}

}  // namespace

Result<LogRow> DecodeLogRowWithPatch(std::string_view value,
                                     std::string_view where) {
  auto j = ParseFrame(value, where, "log");
  CDE_RETURN_IF_ERROR(j.status());
  LogRow row;
  if (j->is_object() && j->contains("events")) {
    const json& events = (*j)["events"];
    const auto patch = j->find("patch");
    if (!events.is_array() || events.empty() || patch == j->end() ||
        !patch->is_object() || j->size() != 2) {
      return Undecodable(where, "log",
                         "a row with a snapshot patch must be a map of "
                         "\"events\" (an array of one or more) and "
                         "\"patch\" (a map)");
    }
    CDE_RETURN_IF_ERROR(FillEvents(events, where, &row.events));
    row.snapshot_patch = std::move(*patch);
    return row;
  }
  if (j->is_object()) {
    auto one = FillFrom<LogRecord>(*j, where, "log", FillLog);
    CDE_RETURN_IF_ERROR(one.status());
    row.events.push_back(std::move(one).value());
    return row;
  }
  if (!j->is_array() || j->size() < 2) {
    return Undecodable(where, "log",
                       "neither an event's map nor an array of two or more");
  }
  CDE_RETURN_IF_ERROR(FillEvents(*j, where, &row.events));
  return row;
}

Result<std::vector<LogRecord>> DecodeLogRow(std::string_view value,
                                            std::string_view where) {
  auto row = DecodeLogRowWithPatch(value, where);
  CDE_RETURN_IF_ERROR(row.status());
  return std::move(row->events);
}

Status ApplySnapshotPatch(const json& patch, uint64_t last_seq, SagaRecord* rec,
                          std::string_view where) {
  auto bad = [&](const std::string& what) {
    return Status::Corruption(std::string(where) +
                              ": snapshot patch of saga '" +
                              PrintableKey(rec->id) + "': " + what);
  };
  if (!patch.is_object()) return bad("not a map");
  if (!rec->body.is_object()) return bad("the snapshot's body is not a map");
  if (last_seq <= rec->last_seq) {
    return bad("its row ends at seq " + std::to_string(last_seq) +
               ", not after the snapshot's " + std::to_string(rec->last_seq));
  }
  const auto updated = patch.find("updated_ms");
  if (updated == patch.end() || !updated->is_number_integer()) {
    return bad("updated_ms missing or not an integer");
  }
  for (const auto& [key, value] : patch.items()) {
    if (key != "set" && key != "unset" && key != "elements" &&
        key != "updated_ms") {
      return bad("unknown field '" + key + "'");
    }
  }
  if (const auto set = patch.find("set"); set != patch.end()) {
    if (!set->is_object()) return bad("set is not a map");
    for (const auto& [key, value] : set->items()) rec->body[key] = value;
  }
  if (const auto unset = patch.find("unset"); unset != patch.end()) {
    if (!unset->is_array()) return bad("unset is not an array");
    for (const json& key : *unset) {
      if (!key.is_string()) return bad("unset names a field by a non-text");
      rec->body.erase(key.get_ref<const std::string&>());
    }
  }
  if (const auto elements = patch.find("elements"); elements != patch.end()) {
    if (!elements->is_object()) return bad("elements is not a map");
    for (const auto& [key, changes] : elements->items()) {
      const auto array = rec->body.find(key);
      if (array == rec->body.end() || !array->is_array()) {
        return bad("elements of '" + key + "', which is not an array");
      }
      if (!changes.is_array())
        return bad("elements of '" + key + "': not an array");
      for (const json& change : changes) {
        if (!change.is_array() || change.size() != 2 ||
            !change[0].is_number_unsigned() ||
            change[0].get<uint64_t>() >= array->size()) {
          return bad("elements of '" + key + "' (" +
                     std::to_string(array->size()) +
                     "): each must be [index below that, value]");
        }
        (*array)[change[0].get<size_t>()] = change[1];
      }
    }
  }
  rec->updated_ms = updated->get<int64_t>();
  rec->last_seq = last_seq;
  return Status::OK();
}

std::string EncodeDlq(const DlqRecord& r) {
  std::string out;
  CborWriter(&out, kRecordVersion, 9)
      .Field("saga_id", r.saga_id)
      .Field("workflow", r.workflow)
      .Field("version", r.version)
      .Field("reason", r.reason)
      .Field("step", r.step)
      .Field("last_error", r.last_error)
      .Field("attempts", r.attempts)
      .Field("parked_ms", r.parked_ms)
      .Field("replay_count", r.replay_count);
  return out;
}

Result<DlqRecord> DecodeDlq(std::string_view value, std::string_view where) {
  return Unframe<DlqRecord>(value, where, "dlq", [](const json& j, auto& r) {
    r.saga_id = j.at("saga_id").get<std::string>();
    r.workflow = j.at("workflow").get<std::string>();
    r.version = IntField<uint32_t>(j, "version");
    r.reason = j.at("reason").get<std::string>();
    r.step = j.at("step").get<std::string>();
    r.last_error = j.at("last_error").get<std::string>();
    r.attempts = IntField<uint32_t>(j, "attempts");
    r.parked_ms = IntField<int64_t>(j, "parked_ms");
    r.replay_count = IntField<uint32_t>(j, "replay_count");
  });
}

std::string EncodeTimer(const TimerRecord& r) {
  std::string out;
  CborWriter(&out, kRecordVersion, 4)
      .Field("due_ms", r.due_ms)
      .Field("saga_id", r.saga_id)
      .Field("name", r.name)
      .Field("data", r.data);
  return out;
}

Result<TimerRecord> DecodeTimer(std::string_view value,
                                std::string_view where) {
  return Unframe<TimerRecord>(value, where, "timer",
                              [](const json& j, auto& r) {
                                r.due_ms = IntField<int64_t>(j, "due_ms");
                                r.saga_id = j.at("saga_id").get<std::string>();
                                r.name = j.at("name").get<std::string>();
                                r.data = j.at("data");
                              });
}

std::string_view DefinitionOriginName(DefinitionOrigin origin) {
  return origin == DefinitionOrigin::kClient ? "client" : "operator";
}

std::optional<DefinitionOrigin> DefinitionOriginFromName(
    std::string_view name) {
  if (name == "operator") return DefinitionOrigin::kOperator;
  if (name == "client") return DefinitionOrigin::kClient;
  return std::nullopt;
}

std::string EncodeDefinition(const DefinitionRecord& r) {
  std::string out;
  CborWriter(&out, kRecordVersion, 6)
      .Field("name", r.name)
      .Field("version", r.version)
      .Field("registered_ms", r.registered_ms)
      .Field("definition", r.definition)
      .Field("origin", DefinitionOriginName(r.origin))
      .Field("registered_by", r.registered_by);
  return out;
}

Result<DefinitionRecord> DecodeDefinition(std::string_view value,
                                          std::string_view where) {
  return Unframe<DefinitionRecord>(
      value, where, "definition", [](const json& j, auto& r) {
        r.name = j.at("name").get<std::string>();
        r.version = IntField<uint32_t>(j, "version");
        r.registered_ms = IntField<int64_t>(j, "registered_ms");
        r.definition = j.at("definition");
        r.origin = DefinitionOrigin::kClient;  // before origins were kept
        if (auto it = j.find("origin"); it != j.end()) {
          auto origin = DefinitionOriginFromName(it->get<std::string>());
          if (!origin) throw std::invalid_argument("unknown origin");
          r.origin = *origin;
        }
        r.registered_by = j.value("registered_by", std::string());
      });
}

std::string EncodeIdempotency(std::string_view saga_id) {
  std::string out;
  CborWriter(&out, kRecordVersion, 1).Field("saga_id", saga_id);
  return out;
}

Result<std::string> DecodeIdempotency(std::string_view value,
                                      std::string_view where) {
  return Unframe<std::string>(value, where, "idempotency",
                              [](const json& j, std::string& saga_id) {
                                saga_id = j.at("saga_id").get<std::string>();
                              });
}

std::string EncodeFormatVersion(uint32_t version) {
  std::string out;
  CborWriter(&out, kRecordVersion, 1).Field("format_version", version);
  return out;
}

Result<uint32_t> DecodeFormatVersion(std::string_view value,
                                     std::string_view where) {
  return Unframe<uint32_t>(value, where, "meta",
                           [](const json& j, uint32_t& v) {
                             v = IntField<uint32_t>(j, "format_version");
                           });
}

std::string EncodeItem(const json& body) {
  std::string out(1, static_cast<char>(kRecordVersion));
  json::to_cbor(body, out);
  return out;
}

Result<json> DecodeItem(std::string_view value, std::string_view where) {
  return Unframe<json>(value, where, "item",
                       [](const json& j, json& body) { body = j; });
}

}  // namespace cde
