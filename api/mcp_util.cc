#include "api/mcp_util.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>

#include "engine/saga_view.h"

namespace cde::mcp {

using nlohmann::json;

std::string ErrorCode(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
      return "invalid_argument";
    case Status::Code::kNotFound:
      return "not_found";
    case Status::Code::kAlreadyExists:
      return "already_exists";
    case Status::Code::kShutdownInProgress:
      return "shutting_down";
    case Status::Code::kBusy:
      return "busy";
    default:
      return "internal";
  }
}

Result<std::string> StringArg(const json& args, const char* name,
                              bool required) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) {
    if (!required) return std::string();
    return Status::InvalidArgument(std::string("arguments.") + name +
                                   ": required");
  }
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("arguments.") + name +
                                   ": must be a string");
  }
  return it->get<std::string>();
}

Result<std::optional<uint64_t>> IntArg(const json& args, const char* name,
                                       uint64_t min, uint64_t max) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return std::optional<uint64_t>();
  if (!it->is_number_unsigned() || it->get<uint64_t>() < min ||
      it->get<uint64_t>() > max) {
    return Status::InvalidArgument(
        std::string("arguments.") + name + ": must be an integer from " +
        std::to_string(min) + " to " + std::to_string(max));
  }
  return std::optional<uint64_t>(it->get<uint64_t>());
}

Result<bool> BoolArg(const json& args, const char* name, bool fallback) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return Status::InvalidArgument(std::string("arguments.") + name +
                                   ": must be a boolean");
  }
  return it->get<bool>();
}

namespace {

// "" if `id` may be a correlation id, else what is wrong with it.
std::string CheckCorrelationId(const std::string& id) {
  if (id.size() > kMaxCorrelationIdLength) {
    return "longer than " + std::to_string(kMaxCorrelationIdLength) +
           " characters";
  }
  for (char c : id) {
    // It goes out as an HTTP header (X-Correlation-ID) and into logs.
    if (c < 0x20 || c > 0x7e) return "must be printable ASCII characters";
  }
  return "";
}

// The correlation id and traceparent of a start (see StartArgs).
Status TraceArgs(const json& meta, std::string_view header_correlation_id,
                 std::string_view header_traceparent, StartRequest* req) {
  const json m = meta.is_object() ? meta : json::object();
  if (auto c = m.find("correlation_id"); c != m.end() && !c->is_null()) {
    if (!c->is_string()) {
      return Status::InvalidArgument("_meta.correlation_id: must be a string");
    }
    req->correlation_id = c->get<std::string>();
    if (std::string why = CheckCorrelationId(req->correlation_id);
        !why.empty()) {
      return Status::InvalidArgument("_meta.correlation_id: " + why);
    }
  }
  if (req->correlation_id.empty()) {
    req->correlation_id = std::string(header_correlation_id);
    if (std::string why = CheckCorrelationId(req->correlation_id);
        !why.empty()) {
      return Status::InvalidArgument("X-Correlation-ID header: " + why);
    }
  }
  // A malformed traceparent only costs the link to the caller's trace.
  if (auto t = m.find("traceparent");
      t != m.end() && t->is_string() &&
      !TraceIdOf(t->get_ref<const std::string&>()).empty()) {
    req->traceparent = t->get<std::string>();
  } else if (!TraceIdOf(header_traceparent).empty()) {
    req->traceparent = std::string(header_traceparent);
  }
  return Status::OK();
}

}  // namespace

Result<StartRequest> StartArgs(const json& args, const json& meta,
                               std::string_view header_correlation_id,
                               std::string_view header_traceparent,
                               std::string_view started_by) {
  auto workflow = StringArg(args, "workflow");
  if (!workflow.ok()) return workflow.status();
  auto key = StringArg(args, "idempotency_key", false);
  if (!key.ok()) return key.status();
  StartRequest req{.workflow = *workflow,
                   .input = args.value("input", json::object()),
                   .idempotency_key = *key,
                   .started_by = std::string(started_by)};
  if (auto v = args.find("version"); v != args.end() && !v->is_null()) {
    if (!v->is_number_unsigned() || v->get<uint64_t>() < 1 ||
        v->get<uint64_t>() > UINT32_MAX) {
      return Status::InvalidArgument(
          "arguments.version: must be an integer >= 1");
    }
    req.version = v->get<uint32_t>();
  }
  Status trace =
      TraceArgs(meta, header_correlation_id, header_traceparent, &req);
  if (!trace.ok()) return trace;
  return req;
}

std::string IsoTime(int64_t ms) {
  const int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  const time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[96];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, static_cast<int>(ms - secs * 1000));
  return buf;
}

namespace {
constexpr char kBase64Url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}  // namespace

std::string EncodeCursor(const std::string& position) {
  std::string out;
  uint32_t bits = 0;
  int nbits = 0;
  for (unsigned char c : position) {
    bits = (bits << 8) | c;
    nbits += 8;
    while (nbits >= 6) {
      nbits -= 6;
      out.push_back(kBase64Url[(bits >> nbits) & 63]);
    }
  }
  if (nbits > 0) out.push_back(kBase64Url[(bits << (6 - nbits)) & 63]);
  return out;
}

std::optional<std::string> DecodeCursor(const std::string& cursor) {
  std::string out;
  uint32_t bits = 0;
  int nbits = 0;
  for (char c : cursor) {
    const char* p = c == '\0' ? nullptr : strchr(kBase64Url, c);
    if (p == nullptr) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(p - kBase64Url);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((bits >> nbits) & 255));
    }
  }
  // Leftover bits must be the zero padding EncodeCursor writes.
  if (nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0) return std::nullopt;
  if (EncodeCursor(out) != cursor) return std::nullopt;
  return out;
}

int LogLevelIndex(std::string_view level) {
  for (size_t i = 0; i < std::size(kLogLevels); ++i) {
    if (level == kLogLevels[i]) return static_cast<int>(i);
  }
  return -1;
}

std::string SagaStateNames() {
  std::string out;
  for (uint8_t code = 1; auto state = SagaStateFromCode(code); ++code) {
    if (!out.empty()) out += ", ";
    out += SagaStateName(*state);
  }
  return out;
}

std::shared_ptr<const WorkflowDefinition> FindWorkflow(const Engine& engine,
                                                       const std::string& name,
                                                       uint32_t version) {
  return engine.FindWorkflow(name, version);
}

std::vector<std::shared_ptr<const WorkflowDefinition>> LatestWorkflows(
    const Engine& engine) {
  std::vector<std::shared_ptr<const WorkflowDefinition>> latest;
  // ListWorkflows comes by name, then version: the last of a name wins.
  for (auto& def : engine.ListWorkflows()) {
    if (!latest.empty() && latest.back()->name == def->name) {
      latest.back() = std::move(def);
    } else {
      latest.push_back(std::move(def));
    }
  }
  return latest;
}
// "step 'book' failed with http_503: ..." for `view`'s failure ("" when it
// has none); "a step" when the failed step cannot be told.
std::string DescribeFailure(const SagaView& view) {
  const ErrorInfo& f = view.saga().failure;
  if (f.empty()) return "";
  const StepView* step = view.failed_step();
  if (step == nullptr) {
    for (const StepView& s : view.steps()) {
      if (s.state->status == StepStatus::kFailed) {
        step = &s;
        break;
      }
    }
  }
  return (step == nullptr ? "a step" : "step '" + step->path + "'") +
         " failed with " + f.kind + ": " + f.message;
}

// What an agent can do about a saga in `state` that failed as `failure`
// says ("" = no failure): the tools alone must get it from a failure to a
// fix.
std::string NextStep(SagaState state, const std::string& failure) {
  switch (state) {
    case SagaState::kCompleted:
      return "Completed: each step's result is in steps[].output.";
    case SagaState::kParked:
      return "Parked in the dead-letter queue" +
             (failure.empty() ? std::string() : " because " + failure) +
             ". Fix the cause, then call replay_saga with this saga_id to "
             "run it again from the failed step (from_step picks another); "
             "get_saga_log shows every attempt.";
    case SagaState::kCompensated:
      return "Failed" +
             (failure.empty() ? std::string() : " because " + failure) +
             ", and its completed steps were undone. Start a new saga "
             "(start_workflow) once the cause is fixed; get_saga_log shows "
             "every attempt.";
    case SagaState::kCancelled:
      return "Cancelled; nothing more will run.";
    default:
      return "Still running: call get_saga again to follow it (or "
             "start_workflow with wait_ms), cancel_saga to stop it.";
  }
}

json SagaJson(SagaRecord r, const WorkflowDefinition* def) {
  auto saga = FromRecord(r);
  if (saga.ok()) return json::parse(SagaJsonText(*saga, def));
  // The engine parks such a saga as poison; show what can be shown.
  return {{"saga_id", r.id},
          {"workflow", r.workflow},
          {"version", r.version},
          {"state", SagaStateName(r.state)},
          {"created_ms", r.created_ms},
          {"updated_ms", r.updated_ms},
          {"last_seq", r.last_seq},
          {"error",
           "the saga's snapshot cannot be read: " + saga.status().message()},
          {"next",
           "The saga's snapshot cannot be read. An operator can "
           "check the store with `cde-admin verify`."}};
}

json SagaJson(const Engine& engine, SagaRecord r) {
  const auto def = FindWorkflow(engine, r.workflow, r.version);
  return SagaJson(std::move(r), def.get());
}

json LogJson(const LogRecord& r) {
  return {{"seq", r.seq},
          {"time_ms", r.time_ms},
          {"type", r.type},
          {"data", r.data}};
}

json BreakersJson(const std::vector<CircuitBreakers::View>& views) {
  json out = json::array();
  for (const CircuitBreakers::View& b : views) {
    out.push_back({{"key", b.key},
                   {"state", BreakerStateName(b.state)},
                   {"consecutive_failures", b.consecutive_failures},
                   {"opened_total", b.opened_total}});
  }
  return out;
}

std::string EncodeToolResultText(const json& id, std::string_view text) {
  std::string out = R"({"id":)";
  out += id.dump();
  out += R"(,"jsonrpc":"2.0","result":{"content":[{"text":")";
  out.reserve(out.size() + 2 * text.size() + 64);
  // `text` is compact JSON, in which every control character is escaped:
  // as a string it needs only its quotes and backslashes escaped.
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += R"(","type":"text"}],"isError":false,"structuredContent":)";
  out += text;
  out += "}}";
  return out;
}

std::string EncodeToolResult(const json& id, const json& structured) {
  return EncodeToolResultText(id, structured.dump());
}

namespace {

// JSON text written member by member, as json::dump() writes it (compact).
// Callers give an object's keys in byte order, the order of nlohmann's
// std::map, so that the text is the same bytes.
class JsonText {
 public:
  explicit JsonText(std::string* out) : out_(out) {}
  void String(std::string_view s) {
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\' || u < 0x20 || u >= 0x80) {
        // Escapes, and dump()'s check of UTF-8: its own serializer.
        *out_ += json(std::string(s)).dump();
        return;
      }
    }
    *out_ += '"';
    *out_ += s;
    *out_ += '"';
  }
  void Key(std::string_view key) {
    *out_ += first_ ? '{' : ',';
    first_ = false;
    String(key);
    *out_ += ':';
  }
  void Str(std::string_view key, std::string_view v) {
    Key(key);
    String(v);
  }
  void Int(std::string_view key, int64_t v) {
    Key(key);
    *out_ += std::to_string(v);
  }
  void Bool(std::string_view key, bool v) {
    Key(key);
    *out_ += v ? "true" : "false";
  }
  void Json(std::string_view key, const json& v) {
    Key(key);
    *out_ += v.dump();
  }
  void Error(std::string_view key, const ErrorInfo& e) {
    Key(key);
    JsonText o(out_);
    o.Str("kind", e.kind);
    o.Str("message", e.message);
    o.Close();
  }
  // Ends the object ("{}" when it had no member).
  void Close() { *out_ += first_ ? "{}" : "}"; }

 private:
  std::string* out_;
  bool first_ = true;
};

// A step, and a parallel step's branches with their steps inside: the tree
// of paths.
void StepText(std::string* out, const SagaView& view, const StepView& step) {
  const StepState& st = *step.state;
  JsonText o(out);
  o.Int("attempts", st.attempts);
  if (st.attempts_base != 0) o.Int("attempts_base", st.attempts_base);
  if (!step.branches.empty()) {
    o.Key("branches");
    JsonText branches(out);
    for (const BranchView& b : step.branches) {
      branches.Key(b.name);
      *out += '[';
      for (size_t i = 0; i < b.steps.size(); ++i) {
        if (i != 0) *out += ',';
        StepText(out, view, view.steps()[b.steps[i]]);
      }
      *out += ']';
    }
    branches.Close();
  }
  if (st.compensation != CompensationStatus::kNone) {
    o.Str("compensation", CompensationStatusName(st.compensation));
  }
  if (st.compensation_attempts != 0) {
    o.Int("compensation_attempts", st.compensation_attempts);
  }
  if (st.compensation_attempts_base != 0) {
    o.Int("compensation_attempts_base", st.compensation_attempts_base);
  }
  if (!st.compensation_error.empty()) {
    o.Error("compensation_error", st.compensation_error);
  }
  if (!st.error.empty()) o.Error("error", st.error);
  if (st.finished_ms != 0) o.Int("finished_ms", st.finished_ms);
  if (step.map()) {
    const MapProgress& mp = st.map;
    o.Key("items");
    JsonText items(out);
    items.Int("failed", mp.failed);
    items.Int("running", mp.running);
    items.Int("started", mp.started);
    items.Int("succeeded", mp.succeeded);
    items.Int("total", mp.items);
    items.Close();
  }
  if (step.parallel()) o.Str("kind", "parallel");
  if (step.map()) o.Str("kind", "map");
  if (step.spec != nullptr) o.Str("name", step.spec->name);
  if (!st.output.is_null()) o.Json("output", st.output);
  o.Str("path", step.path);
  if (st.started_ms != 0) o.Int("started_ms", st.started_ms);
  o.Str("status", StepStatusName(st.status));
  o.Close();
}

// `items` as a JSON array, each written by `write`.
template <typename Items, typename Write>
void ArrayText(std::string* out, const Items& items, Write&& write) {
  *out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) *out += ',';
    write(out, items[i]);
  }
  *out += ']';
}

void WaitText(std::string* out, const WaitView& w) {
  JsonText o(out);
  if (w.attempt != 0) o.Int("attempt", w.attempt);
  if (!w.path.empty()) o.Bool("compensation", w.compensation);
  if (w.due_ms != 0) o.Int("due_ms", w.due_ms);
  o.Str("kind", WaitKindName(w.kind));
  if (!w.path.empty()) o.Str("path", w.path);
  if (w.stopped) o.Bool("stopped", true);
  o.Close();
}

}  // namespace

std::string SagaJsonText(const Saga& saga, const WorkflowDefinition* def) {
  const SagaView view(saga, def);
  const Saga& s = view.saga();
  const std::string failure = DescribeFailure(view);
  std::string out;
  out.reserve(512 + 160 * s.steps.size());
  JsonText o(&out);
  if (!s.cancelled_by.empty()) o.Str("cancelled_by", s.cancelled_by);
  if (!s.correlation_id.empty()) o.Str("correlation_id", s.correlation_id);
  o.Int("created_ms", s.created_ms);
  if (!s.failure.empty()) o.Error("failure", s.failure);
  if (!s.idempotency_key.empty()) {
    o.Str("idempotency_key", s.idempotency_key);
  }
  // A saga whose input is in its log is read with it (LoadLoggedInput).
  o.Json("input", HasInput(s) ? s.input : json());
  o.Int("last_seq", static_cast<int64_t>(s.last_seq));
  o.Str("next", NextStep(s.state, failure));
  if (!s.replayed_by.empty()) o.Str("replayed_by", s.replayed_by);
  o.Str("saga_id", s.id);
  if (!s.started_by.empty()) o.Str("started_by", s.started_by);
  o.Str("state", SagaStateName(s.state));
  o.Key("steps");
  ArrayText(&out, view.top(), [&view](std::string* text, size_t i) {
    StepText(text, view, view.steps()[i]);
  });
  if (!s.trace_id.empty()) o.Str("trace_id", s.trace_id);
  o.Int("updated_ms", s.updated_ms);
  o.Int("version", s.version);
  if (!view.waits().empty()) {
    o.Key("waits");
    ArrayText(&out, view.waits(), WaitText);
  }
  o.Str("workflow", s.workflow);
  o.Close();
  return out;
}

}  // namespace cde::mcp
