// cde-admin sagas list | show ID | log ID
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <limits>
#include <optional>

#include "engine/kinds.h"
#include "storage/saga_id.h"
#include "tools/admin/commands.h"
#include "tools/admin/saga_view.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

constexpr const char* kStates =
    "running, compensating, completed, compensated, parked, cancelling, "
    "cancelled";

int64_t ParseTimeFlag(const char* flag, const std::string& text,
                      int64_t now_ms) {
  auto t = ParseTime(text, now_ms);
  if (!t) {
    Fail(kExitUsage, std::string(flag) + ": '" + text +
                         "' is neither an RFC 3339 time "
                         "(2026-11-27T08:00:00Z) nor a time ago (15m, 2h, 3d)");
  }
  return *t;
}

SagaRecord GetSagaOrFail(Store& store, const std::string& id) {
  auto rec = store.GetSaga(id);
  if (rec.status().IsNotFound()) Fail(kExitFailed, "no saga " + id);
  return Check(std::move(rec));
}

std::string StepCell(const json& summary) {
  const json& cur = summary["current_step"];
  if (cur.is_null()) return "-";
  std::string s = cur["path"].get<std::string>();
  if (cur["compensation"].get<bool>()) s += " (undo)";
  return s;
}

std::string AttemptsCell(const json& summary) {
  const json& cur = summary["current_step"];
  if (cur.is_null()) {
    return summary["total_attempts"].is_null()
               ? "?"
               : std::to_string(summary["total_attempts"].get<uint32_t>());
  }
  std::string s = std::to_string(cur["attempts"].get<uint32_t>());
  if (!cur["max_attempts"].is_null()) {
    s += "/" + std::to_string(cur["max_attempts"].get<uint32_t>());
  }
  return s;
}

// --- sagas show: the timeline ---

struct Attempt {
  std::string step;
  bool compensation = false;
  uint32_t attempt = 0;
  int64_t started_ms = 0;
  int64_t ended_ms = 0;               // 0 while in flight
  std::string outcome = "in_flight";  // succeeded, failed, retrying
  json error;
  int64_t due_ms = 0;  // a sleep's end, or a retry's time
};

std::string Str(const json& data, const char* key) {
  auto it = data.find(key);
  if (it == data.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string ErrorText(const json& e) {
  if (e.is_string()) return e.get<std::string>();
  if (!e.is_object()) return e.dump();
  return Str(e, "kind") + ": " + Str(e, "message");
}

std::string Who(const json& data) {
  std::string s = Str(data, "step");
  auto c = data.find("compensation");
  if (c != data.end() && c->is_boolean() && c->get<bool>()) {
    s += " (compensation)";
  }
  return s;
}

// Failures red, completion green, the rest plain.
Colour ColourOf(std::string_view event_type) {
  const std::optional<EventKind> kind = EventKindFromName(event_type);
  if (!kind) return Colour::kNone;
  switch (ToneOf(*kind)) {
    case EventTone::kBad:
      return Colour::kRed;
    case EventTone::kGood:
      return Colour::kGreen;
    case EventTone::kProgress:
      break;
  }
  return Colour::kNone;
}

uint32_t AttemptNo(const json& data) {
  auto it = data.find("attempt");
  return it != data.end() && it->is_number_unsigned() ? it->get<uint32_t>() : 0;
}

class Timeline {
 public:
  explicit Timeline(int64_t created_ms) : created_ms_(created_ms) {}

  // Describes `e` in words and folds it into the attempts.
  std::string Add(const LogRecord& e) {
    const json& d = e.data;
    const std::optional<EventKind> kind = EventKindFromName(e.type);
    if (!kind) return e.type + " " + d.dump();  // a newer build's event
    switch (*kind) {
      case EventKind::kAttemptStarted: {
        Attempt a;
        a.step = Str(d, "step");
        a.compensation = d.value("compensation", false);
        a.attempt = AttemptNo(d);
        a.started_ms = e.time_ms;
        std::string text =
            Who(d) + ": attempt " + std::to_string(a.attempt) + " started";
        if (auto due = d.find("due_ms"); due != d.end() && due->is_number()) {
          a.due_ms = due->get<int64_t>();
          text += ", sleeps until " + FormatTime(a.due_ms);
        }
        attempts_.push_back(std::move(a));
        return text;
      }
      case EventKind::kStepSucceeded:
      case EventKind::kCompensationSucceeded: {
        Attempt* a = End(d, e.time_ms, "succeeded");
        return Who(d) + ": attempt " + std::to_string(AttemptNo(d)) +
               " succeeded" + Took(a);
      }
      case EventKind::kAttemptFailed: {
        Attempt* a = End(d, e.time_ms, "retrying");
        std::string text = Who(d) + ": attempt " +
                           std::to_string(AttemptNo(d)) + " failed" + Took(a) +
                           ": " + ErrorText(d.value("error", json()));
        if (auto r = d.find("retry_at_ms"); r != d.end() && r->is_number()) {
          if (a != nullptr) {
            a->error = d.value("error", json());
            a->due_ms = r->get<int64_t>();
          }
          text += "; retry at " + FormatTime(r->get<int64_t>());
        }
        return text;
      }
      case EventKind::kStepFailed:
      case EventKind::kCompensationFailed: {
        Attempt* a = End(d, e.time_ms, "failed");
        if (a != nullptr) a->error = d.value("error", json());
        return Who(d) + ": failed permanently at attempt " +
               std::to_string(AttemptNo(d)) + Took(a) + ": " +
               ErrorText(d.value("error", json()));
      }
      case EventKind::kSagaStarted: {
        std::string text =
            "started " + Str(d, "workflow") + "@" + Str(d, "version");
        if (d.contains("idempotency_key")) {
          text += " (idempotency key " + Str(d, "idempotency_key") + ")";
        }
        return text;
      }
      case EventKind::kSagaQueued:
        return "queued for a slot under max_concurrency";
      case EventKind::kSagaDequeued:
        return "got a slot";
      case EventKind::kTimerFired:
        return Str(d, "timer") + " timer fired";
      case EventKind::kSagaCompensating:
        return "compensating because step " + Str(d, "step") + " failed";
      case EventKind::kSagaParked:
        return "parked (" + Str(d, "reason") + ") at step " + Str(d, "step") +
               ": " + Str(d, "error");
      case EventKind::kSagaCompleted:
        return "completed";
      case EventKind::kSagaCompensated:
        return "compensated";
      case EventKind::kSagaCancelled:
        return d.value("compensated", false) ? "cancelled, compensated"
                                             : "cancelled without compensation";
      case EventKind::kCancelRequested:
        return d.value("compensate", true)
                   ? "cancel requested (compensate)"
                   : "cancel requested (no compensation)";
      case EventKind::kReplayed:
        if (d.value("compensation", false)) {
          return "replayed: retrying the failed compensation";
        }
        return "replayed from step " + Str(d, "from_step") + " (replay " +
               Str(d, "replay_count") + ")";
      case EventKind::kCheckpoint:
        return "checkpointed at shutdown: " + Who(d) + " attempt " +
               std::to_string(AttemptNo(d)) + " runs again on the next start";
      case EventKind::kSagaPoisoned:
        return "poisoned: " + Str(d, "error");
      case EventKind::kStepStopped:
        return Who(d) + " stopped (" + Str(d, "reason") + ")";
      case EventKind::kMapStarted:
        return Str(d, "step") + ": " + Str(d, "items") + " items";
      case EventKind::kItemFailed:
        return Str(d, "step") + " item " + Str(d, "item") + " failed" +
               (d.value("tolerated", false) ? " (tolerated): " : ": ") +
               Str(d, "error");
    }
    return e.type + " " + d.dump();
  }

  std::string Offset(int64_t time_ms) const {
    return "+" + FormatDuration(time_ms - created_ms_);
  }

  const std::vector<Attempt>& attempts() const { return attempts_; }

 private:
  // The open attempt the event `d` ends.
  Attempt* End(const json& d, int64_t time_ms, const char* outcome) {
    const std::string step = Str(d, "step");
    const bool comp = d.value("compensation", false);
    const uint32_t n = AttemptNo(d);
    for (auto it = attempts_.rbegin(); it != attempts_.rend(); ++it) {
      if (it->step == step && it->compensation == comp && it->attempt == n &&
          it->ended_ms == 0) {
        it->ended_ms = time_ms;
        it->outcome = outcome;
        return &*it;
      }
    }
    return nullptr;
  }

  static std::string Took(const Attempt* a) {
    if (a == nullptr) return "";
    return " after " + FormatDuration(a->ended_ms - a->started_ms);
  }

  int64_t created_ms_;
  std::vector<Attempt> attempts_;
};

json ErrorJson(const ErrorInfo& e) {
  if (e.empty()) return nullptr;
  return {{"kind", e.kind}, {"message", e.message}};
}

std::string ErrorCell(const ErrorInfo& e) {
  if (e.empty()) return "";
  return Shorten(e.kind + ": " + e.message, 70);
}

std::string StepStatusCell(const StepState& st) {
  return std::string(StepStatusName(st.status));
}

// How its compensation went, as the `undo` row shows it.
Cell CompensationCell(CompensationStatus s) {
  switch (s) {
    case CompensationStatus::kSucceeded:
      return {"succeeded", Colour::kGreen};
    case CompensationStatus::kFailed:
      return {"failed", Colour::kRed};
    case CompensationStatus::kRunning:
      return {"running", Colour::kCyan};
    case CompensationStatus::kNotDefined:
      return {"not defined", Colour::kDim};
    case CompensationStatus::kNone:
      break;
  }
  return {};
}

// --- sagas log ---

volatile sig_atomic_t g_interrupted = 0;

void OnInterrupt(int) { g_interrupted = 1; }

void InstallInterruptHandler() {
  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the sleep returns early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, static_cast<long>(ms % 1000) * 1'000'000L};
  while (!g_interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void PrintEvent(const LogRecord& e, bool as_json) {
  if (as_json) {
    json j = {{"saga_id", e.saga_id}, {"seq", e.seq},
              {"time_ms", e.time_ms}, {"at", FormatTime(e.time_ms)},
              {"type", e.type},       {"data", e.data}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  const Colour c = ColourOf(e.type);
  std::string type = e.type;
  type.resize(std::max<size_t>(type.size(), 22), ' ');
  std::printf("%5llu  %s  %s  %s\n", static_cast<unsigned long long>(e.seq),
              FormatTime(e.time_ms).c_str(), Paint(type, c).c_str(),
              e.data.dump().c_str());
}

}  // namespace

int RunSagasList(const Common& common, const SagaListOptions& o) {
  const int64_t now = NowMs();
  SagaQuery q;
  if (!o.state.empty()) {
    auto s = SagaStateFromName(o.state);
    if (!s) {
      Fail(kExitUsage,
           "--state: unknown state '" + o.state + "' (one of " + kStates + ")");
    }
    q.state = *s;
  }
  if (!o.workflow.empty()) q.workflow = o.workflow;
  if (!o.since.empty()) q.since_ms = ParseTimeFlag("--since", o.since, now);
  if (!o.until.empty()) q.until_ms = ParseTimeFlag("--until", o.until, now);
  if (o.limit == 0) Fail(kExitUsage, "--limit: must be at least 1");
  if (!o.cursor.empty() && !IsSagaId(o.cursor)) {
    Fail(kExitUsage, "--cursor: '" + o.cursor +
                         "' is not a cursor printed by a previous page");
  }
  q.limit = o.limit;
  q.cursor = o.cursor;

  StoreAccess access = OpenForRead(common.data_dir);
  const SagaPage page = Check(access.store->ListSagas(q));
  Definitions defs(*access.store);
  json rows = json::array();
  for (const SagaRecord& r : page.sagas) {
    rows.push_back(SagaSummary(r, FromRecord(r), defs, now));
  }
  // Sagas whose rows do not decode: named, with why, after the others.
  json unreadable = json::array();
  for (const SagaPage::Unreadable& u : page.unreadable) {
    unreadable.push_back({{"id", u.id}, {"error", u.error.ToString()}});
  }
  if (common.json) {
    json out = {
        {"sagas", rows},
        {"next_cursor",
         page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}};
    if (!unreadable.empty()) out["unreadable"] = unreadable;
    PrintJson(out);
    return kExitOk;
  }
  for (const json& u : unreadable) {
    std::fprintf(stderr, "saga %s does not read: %s\n",
                 u["id"].get<std::string>().c_str(),
                 u["error"].get<std::string>().c_str());
  }
  if (rows.empty()) {
    std::printf("no sagas\n");
    return kExitOk;
  }
  Table t({"ID", "WORKFLOW", "STATE", "STEP", "ATTEMPTS", "AGE", "DURATION"});
  for (const json& r : rows) {
    const std::string state = r["state"].get<std::string>();
    t.AddRow({r["id"].get<std::string>(),
              r["workflow"].get<std::string>() + "@" +
                  std::to_string(r["version"].get<uint32_t>()),
              {state, StateColour(state)},
              StepCell(r),
              AttemptsCell(r),
              FormatDuration(r["age_ms"].get<int64_t>()),
              FormatDuration(r["duration_ms"].get<int64_t>())});
  }
  t.Print();
  if (!page.next_cursor.empty()) {
    std::printf("more: add --cursor %s for the next page\n",
                page.next_cursor.c_str());
  }
  return kExitOk;
}

// The items of the map step at `map_path` that did not succeed, the first
// kMaxItemsShown of them: what an operator looks at when a map failed.
// Read a page of the map's rows at a time, and no further than needed: a
// saga's maps can hold a million items between them.
constexpr size_t kMaxItemsShown = 20;
constexpr size_t kItemPage = 1024;
json UnfinishedItems(Store& store, const std::string& saga_id,
                     const std::string& map_path, uint32_t started) {
  json out = json::array();
  if (started == 0) return out;
  uint32_t from = 0;
  for (;;) {
    const auto rows =
        Check(store.ReadMapItems(saga_id, map_path, from, kItemPage));
    for (const ItemRecord& row : rows) {
      const std::string status = row.body.value("status", std::string());
      if (status == "succeeded") continue;
      json error =
          row.body.contains("error") ? row.body["error"] : json(nullptr);
      out.push_back({{"index", row.index},
                     {"path", map_path + "[" + std::to_string(row.index) + "]"},
                     {"status", status},
                     {"compensation", row.body.value("compensation", "")},
                     {"error", error}});
      if (out.size() == kMaxItemsShown) return out;
    }
    if (rows.size() < kItemPage || rows.back().index == UINT32_MAX) return out;
    from = rows.back().index + 1;
  }
}

int RunSagasShow(const Common& common, const std::string& id) {
  const int64_t now = NowMs();
  StoreAccess access = OpenForRead(common.data_dir);
  Store& store = *access.store;
  SagaRecord rec = GetSagaOrFail(store, id);
  const auto log =
      Check(store.ReadLog(id, 1, std::numeric_limits<size_t>::max()));
  // A large input is kept in the log: shown if it can be read back.
  const Status input_read = LoadLoggedInput(store, rec);
  const Result<Saga> saga = FromRecord(rec);
  Definitions defs(store);
  const WorkflowDefinition* def = defs.Find(rec.workflow, rec.version);
  auto dlq = store.GetDlq(id);

  Timeline timeline(rec.created_ms);
  json events = json::array();
  for (const LogRecord& e : log) {
    events.push_back({{"seq", e.seq},
                      {"time_ms", e.time_ms},
                      {"at", FormatTime(e.time_ms)},
                      {"offset_ms", e.time_ms - rec.created_ms},
                      {"type", e.type},
                      {"text", timeline.Add(e)}});
  }
  json attempts = json::array();
  for (const Attempt& a : timeline.attempts()) {
    attempts.push_back(
        {{"step", a.step},
         {"compensation", a.compensation},
         {"attempt", a.attempt},
         {"started_ms", a.started_ms},
         {"ended_ms", a.ended_ms == 0 ? json(nullptr) : json(a.ended_ms)},
         {"duration_ms",
          a.ended_ms == 0 ? json(nullptr) : json(a.ended_ms - a.started_ms)},
         {"outcome", a.outcome},
         {"error", a.error},
         {"due_ms", a.due_ms == 0 ? json(nullptr) : json(a.due_ms)}});
  }
  json steps = json::array();
  std::optional<SagaView> view;
  if (saga.ok()) view.emplace(*saga, def);
  if (view) {
    for (size_t i = 0; i < view->steps().size(); ++i) {
      const StepView& step = view->steps()[i];
      // A map step's own steps run per item: the map step shows the items.
      if (step.in_map) continue;
      const StepState& st = *step.state;
      const StepSpec* spec = step.spec;
      const ActionSpec* undo =
          spec != nullptr && spec->compensate ? &*spec->compensate : nullptr;
      const bool done = st.finished_ms != 0 && st.started_ms != 0;
      const bool parallel = step.parallel() || step.map();
      steps.push_back(
          {{"index", i},
           {"path", step.path},
           {"kind", step.map() ? "map"
                    : parallel ? "parallel"
                               : "action"},
           {"depth", step.depth},
           {"action",
            spec && !parallel ? json(spec->run.action) : json(nullptr)},
           {"status", StepStatusName(st.status)},
           {"compensation",
            st.compensation == CompensationStatus::kNone
                ? json(nullptr)
                : json(CompensationStatusName(st.compensation))},
           {"attempts", st.attempts},
           {"attempts_base", st.attempts_base},
           {"max_attempts", spec && !parallel
                                ? json(spec->run.retry.max_attempts)
                                : json(nullptr)},
           {"compensation_action", undo ? json(undo->action) : json(nullptr)},
           {"compensation_attempts", st.compensation_attempts},
           {"compensation_attempts_base", st.compensation_attempts_base},
           {"compensation_max_attempts",
            undo ? json(undo->retry.max_attempts) : json(nullptr)},
           {"started_ms",
            st.started_ms == 0 ? json(nullptr) : json(st.started_ms)},
           {"finished_ms",
            st.finished_ms == 0 ? json(nullptr) : json(st.finished_ms)},
           {"duration_ms",
            done ? json(st.finished_ms - st.started_ms) : json(nullptr)},
           {"output", st.output},
           {"error", ErrorJson(st.error)},
           {"compensation_error", ErrorJson(st.compensation_error)}});
      if (step.map()) {
        steps.back()["items"] = {{"total", st.map.items},
                                 {"started", st.map.started},
                                 {"running", st.map.running},
                                 {"succeeded", st.map.succeeded},
                                 {"failed", st.map.failed}};
        steps.back()["unfinished_items"] =
            UnfinishedItems(store, id, step.path, st.map.started);
      }
    }
  }
  json summary = SagaSummary(rec, saga, defs, now);

  if (common.json) {
    json doc = {{"saga", summary},
                {"idempotency_key", rec.idempotency_key.empty()
                                        ? json(nullptr)
                                        : json(rec.idempotency_key)},
                {"steps", steps},
                {"attempts", attempts},
                {"timeline", events},
                {"dlq", dlq.ok() ? DlqJson(*dlq) : json(nullptr)}};
    if (saga.ok()) {
      doc["input"] = HasInput(*saga) ? saga->input : json(nullptr);
      auto or_null = [](const std::string& s) {
        return s.empty() ? json(nullptr) : json(s);
      };
      doc["correlation_id"] = or_null(saga->correlation_id);
      doc["trace_id"] = or_null(saga->trace_id);
      doc["started_by"] = or_null(saga->started_by);
      doc["cancelled_by"] = or_null(saga->cancelled_by);
      doc["replayed_by"] = or_null(saga->replayed_by);
      doc["failure"] = ErrorJson(saga->failure);
      const StepView* failed = view->failed_step();
      doc["failed_step"] = failed ? json(failed->path) : json(nullptr);
      doc["replay_count"] = saga->replay_count;
      doc["waiting_for"] = DescribeWaits(*view, now);
    }
    PrintJson(doc);
    return kExitOk;
  }

  const bool finished =
      IsTerminal(rec.state) || rec.state == SagaState::kParked;
  auto field = [](const char* name, const std::string& value) {
    std::printf("%-12s %s\n", name, value.c_str());
  };
  field("saga", Paint(rec.id, Colour::kBold));
  field("workflow", rec.workflow + "@" + std::to_string(rec.version));
  field("state", Paint(SagaStateName(rec.state), StateColour(rec.state)));
  field("created", FormatTime(rec.created_ms) + " (" +
                       FormatDuration(now - rec.created_ms) + " ago)");
  field(
      "updated",
      FormatTime(rec.updated_ms) +
          (finished ? " (took " +
                          FormatDuration(rec.updated_ms - rec.created_ms) + ")"
                    : ""));
  if (!rec.idempotency_key.empty()) field("idem. key", rec.idempotency_key);
  if (!saga.ok()) {
    field("body",
          Paint("unreadable: " + saga.status().message(), Colour::kRed));
  } else {
    if (!saga->correlation_id.empty()) {
      field("correlation", saga->correlation_id);
    }
    if (!saga->trace_id.empty()) field("trace", saga->trace_id);
    if (!saga->started_by.empty()) field("started by", saga->started_by);
    if (!saga->cancelled_by.empty()) field("cancelled by", saga->cancelled_by);
    if (!saga->replayed_by.empty()) field("replayed by", saga->replayed_by);
    field("input",
          HasInput(*saga)
              ? Shorten(saga->input.dump(), 100)
              : Paint("unreadable: " + input_read.message(), Colour::kRed));
    if (!saga->failure.empty()) {
      const StepView* failed = view->failed_step();
      field("failure",
            Paint("step " + (failed ? failed->path : "?") + ": " +
                      saga->failure.kind + ": " + saga->failure.message,
                  Colour::kRed));
    }
    if (saga->replay_count != 0) {
      field("replays", std::to_string(saga->replay_count));
    }
    const std::string wait = DescribeWaits(*view, now);
    if (!wait.empty()) field("waiting for", wait);
  }
  if (dlq.ok()) {
    field("dlq", Paint(dlq->reason, Colour::kRed) + " at step " + dlq->step +
                     ", parked " + FormatTime(dlq->parked_ms) + ", " +
                     std::to_string(dlq->attempts) +
                     " attempts: " + Shorten(dlq->last_error, 80));
  }

  if (saga.ok()) {
    std::printf("\n");
    Table t({"#", "STEP", "ACTION", "STATUS", "ATTEMPTS", "DURATION", "ERROR"});
    for (const json& s : steps) {
      const size_t i = s["index"].get<size_t>();
      const StepState& st = *view->steps()[i].state;
      const bool parallel = s["kind"] == "parallel";
      const bool map = s["kind"] == "map";
      // This run's attempts against the budget (numbers go on after a
      // replay: the timeline shows them).
      std::string attempts_cell =
          parallel || map ? "" : std::to_string(st.attempts_this_run());
      if (map) {
        attempts_cell = std::to_string(st.map.succeeded) + "/" +
                        std::to_string(st.map.items) + " items";
        if (st.map.failed != 0) {
          attempts_cell += ", " + std::to_string(st.map.failed) + " failed";
        }
      }
      if (!s["max_attempts"].is_null()) {
        attempts_cell +=
            "/" + std::to_string(s["max_attempts"].get<uint32_t>());
      }
      const std::string indent(2 * s["depth"].get<size_t>(), ' ');
      t.AddRow({std::to_string(i),
                indent + s["path"].get<std::string>(),
                parallel                ? "parallel"
                : map                   ? "map"
                : s["action"].is_null() ? "?"
                                        : s["action"].get<std::string>(),
                {StepStatusCell(st), StepColour(st.status)},
                attempts_cell,
                s["duration_ms"].is_null()
                    ? ""
                    : FormatDuration(s["duration_ms"].get<int64_t>()),
                {ErrorCell(st.error), Colour::kRed}});
      // A map step's items that did not succeed, each on a row of its own.
      if (map) {
        for (const json& item : s["unfinished_items"]) {
          const std::string status = item["status"].get<std::string>();
          std::string error;
          if (item["error"].is_object()) {
            error = item["error"].value("kind", "") + ": " +
                    item["error"].value("message", "");
          }
          t.AddRow({"",
                    indent + "  " + item["path"].get<std::string>(),
                    "",
                    {status, status == "failed" ? Colour::kRed : Colour::kNone},
                    "",
                    "",
                    {Shorten(error, 60), Colour::kRed}});
        }
      }
      // An `undo` row once undoing the step was called for.
      if (st.compensation != CompensationStatus::kNone ||
          st.compensation_attempts != 0 || !st.compensation_error.empty()) {
        const bool none = st.compensation == CompensationStatus::kNotDefined;
        std::string undo_attempts =
            none ? ""
                 : std::to_string(st.compensation_attempts -
                                  st.compensation_attempts_base);
        if (!none && !s["compensation_max_attempts"].is_null()) {
          undo_attempts +=
              "/" +
              std::to_string(s["compensation_max_attempts"].get<uint32_t>());
        }
        const Cell outcome = CompensationCell(st.compensation);
        t.AddRow({"",
                  indent + "  undo",
                  s["compensation_action"].is_null()
                      ? "-"
                      : s["compensation_action"].get<std::string>(),
                  outcome,
                  undo_attempts,
                  "",
                  {ErrorCell(st.compensation_error), Colour::kRed}});
      }
    }
    t.Print();
  }

  std::printf("\n");
  Table t({"OFFSET", "SEQ", "TIME", "EVENT"});
  for (const json& e : events) {
    const Colour c = ColourOf(e["type"].get<std::string>());
    t.AddRow({timeline.Offset(e["time_ms"].get<int64_t>()),
              std::to_string(e["seq"].get<uint64_t>()),
              e["at"].get<std::string>(),
              {e["text"].get<std::string>(), c}});
  }
  t.Print();
  return kExitOk;
}

int RunSagasLog(const Common& common, const std::string& id, uint64_t from_seq,
                bool follow) {
  StoreAccess access = OpenForRead(common.data_dir, follow);
  Store& store = *access.store;
  SagaRecord rec = GetSagaOrFail(store, id);
  uint64_t next = std::max<uint64_t>(from_seq, 1);
  auto print_new = [&] {
    const auto events = Check(store.ReadLog(id, next, 10000));
    for (const LogRecord& e : events) {
      PrintEvent(e, common.json);
      next = e.seq + 1;
    }
    std::fflush(stdout);
    return events.size();
  };
  while (print_new() == 10000) {
  }
  if (!follow) return kExitOk;
  InstallInterruptHandler();
  int failed_catch_ups = 0;
  while (!IsTerminal(rec.state) || next <= rec.last_seq) {
    SleepMs(200);
    if (g_interrupted) return kExitInterrupted;
    // A catch-up can fail while the server rewrites its MANIFEST: the next
    // poll tries again; only a failure that lasts ends the command.
    if (Status s = store.CatchUp(); !s.ok()) {
      if (++failed_catch_ups == 10) Check(s);
      continue;
    }
    failed_catch_ups = 0;
    while (print_new() == 10000) {
    }
    rec = GetSagaOrFail(store, id);
  }
  return kExitOk;
}

}  // namespace cde::admin
