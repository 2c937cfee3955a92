// cde-admin sagas cancel | dlq replay: through a running server (MCP over
// HTTP) or offline through a maintenance engine (server_link.h).
#include <unistd.h>
#include <uv.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include "engine/dlq_entry.h"
#include "engine/engine.h"
#include "tools/admin/commands.h"
#include "tools/admin/server_link.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

// Who an offline change is recorded as made by (an online one: the
// server's name for the token).
constexpr const char* kLocalCaller = "local";

// What one change came to: the saga's state after it, or why it failed
// (with the exit code that failure maps to).
struct Outcome {
  std::string saga_id;
  std::string state;  // "" when it failed
  std::string error;
  int code = kExitOk;
};

std::string NotFoundMessage(const std::string& id, const std::string& message) {
  // The engine says NotFound for an unknown saga, and for a saga whose
  // workflow version is not registered (a replay): keep that one's words.
  if (message.rfind("workflow ", 0) == 0) return message;
  return "no saga " + id;
}

// --- offline: a maintenance engine on the store ---

class OfflineEngine {
 public:
  explicit OfflineEngine(const std::string& data_dir) {
    // Refuse what is not a store (or a newer format) before opening it for
    // writing, which would create one.
    { StoreAccess check = OpenForRead(data_dir); }
    uv_loop_init(&loop_);
    EngineOptions options;
    options.data_dir = data_dir;
    options.run_sagas = false;
    auto opened = Engine::Open(&loop_, std::move(options));
    if (!opened.ok()) {
      uv_loop_close(&loop_);
      if (const auto holder = LockHolder(data_dir)) {
        std::string who = "a process";
        if (*holder > 0) who += " (pid " + std::to_string(*holder) + ")";
        Fail(kExitLive, who + " took the store at " + data_dir +
                            " while cde-admin opened it");
      }
      Check(opened.status().WithContext("opening the store at " + data_dir));
    }
    engine_ = std::move(opened).value();
  }
  ~OfflineEngine() {
    if (!engine_) return;  // an error left early: close, quietly
    (void)ShutdownAndWait(&loop_, std::move(engine_));
    uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }

  Engine& engine() { return *engine_; }

  template <typename T>
  Result<T> Wait(std::function<void(Engine::Callback<T>)> call) {
    std::optional<Result<T>> result;
    call([&result](Result<T> r) { result = std::move(r); });
    while (!result) uv_run(&loop_, UV_RUN_ONCE);
    return std::move(*result);
  }

  // Shuts the engine down (flushing the store); fails if that fails.
  void Close() {
    if (!engine_) return;
    Status s = ShutdownAndWait(&loop_, std::move(engine_));
    uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
    Check(s.WithContext("closing the store"));
  }

 private:
  uv_loop_t loop_;
  std::unique_ptr<Engine> engine_;
};

Outcome FromEngine(const std::string& id, const Result<SagaState>& r) {
  if (r.ok()) return {id, std::string(SagaStateName(*r)), "", kExitOk};
  const Status& s = r.status();
  std::string message =
      s.IsNotFound() ? NotFoundMessage(id, s.message()) : s.message();
  return {id, "", message, kExitFailed};
}

// --- online: MCP tools of the running server ---

Outcome FromTool(const std::string& id, const json& result) {
  const json sc = result.value("structuredContent", json::object());
  if (!result.value("isError", false)) {
    return {id, sc.value("state", ""), "", kExitOk};
  }
  const json e = sc.value("error", json::object());
  const std::string code = e.value("code", "internal");
  std::string message = e.value("message", "the server refused the call");
  if (code == "not_found") message = NotFoundMessage(id, message);
  return {id, "", message, kExitFailed};
}

std::string Token(const ChangeOptions& options) { return AdminToken(options); }

std::string Via(const Route& route) {
  if (!route.online) return "offline";
  return route.server_pid ? "through the server (pid " +
                                std::to_string(*route.server_pid) + ")"
                          : "through the server at " + route.mcp_url;
}

json RouteJson(const Route& route) {
  json j = {{"via", route.online ? "server" : "offline"}};
  if (route.online) {
    j["server"] = route.mcp_url;
    j["server_pid"] =
        route.server_pid ? json(*route.server_pid) : json(nullptr);
  }
  return j;
}

// The next steps of a saga whose change was committed offline.
const char* OfflineNote(const std::string& state) {
  if (state == "running" || state == "compensating" || state == "cancelling")
    return "; what follows runs when a server next starts on this store";
  return "";
}

// One change: prints it and returns the exit code.
int Report(const Common& common, const Route& route, const Outcome& o,
           const std::string& verb) {
  if (o.code != kExitOk) Fail(o.code, o.error);
  if (common.json) {
    json j = RouteJson(route);
    j["saga_id"] = o.saga_id;
    j["state"] = o.state;
    PrintJson(j);
  } else {
    std::printf("%s saga %s %s: now %s%s\n", verb.c_str(), o.saga_id.c_str(),
                Via(route).c_str(),
                Paint(o.state, StateColour(o.state)).c_str(),
                route.online ? "" : OfflineNote(o.state));
  }
  return kExitOk;
}

// A progress bar on stderr when it is a terminal.
class Bar {
 public:
  explicit Bar(size_t total, const char* verb = "replayed")
      : total_(total), verb_(verb), on_(isatty(STDERR_FILENO)) {}
  ~Bar() { Done(); }
  void Update(size_t done, size_t failed) {
    if (!on_ || total_ == 0) return;
    constexpr size_t kWidth = 30;
    const size_t filled = kWidth * done / total_;
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::fprintf(stderr, "\r\x1b[K[%s] %zu/%zu %s, %zu failed", bar.c_str(),
                 done, total_, verb_, failed);
    std::fflush(stderr);
    drawn_ = true;
  }
  void Done() {
    if (drawn_) std::fputs("\r\x1b[K", stderr);
    drawn_ = false;
  }

 private:
  size_t total_;
  const char* verb_;
  bool on_;
  bool drawn_ = false;
};

// Changes one saga: through the server's MCP tool `tool` when one runs,
// else through an offline engine calling `offline_call(engine, done)`. An
// unknown id changes nothing offline: not even an open for writing.
template <typename OfflineCall>
Outcome ChangeOne(const Common& common, const Route& route,
                  const ChangeOptions& options, const std::string& id,
                  const char* tool, const json& args,
                  OfflineCall offline_call) {
  if (route.online) {
    McpSession mcp(route.mcp_url, Token(options));
    mcp.Open();
    return FromTool(id, mcp.CallTool(tool, args));
  }
  {
    StoreAccess read = OpenForRead(common.data_dir);
    auto found = read.store->GetSaga(id);
    if (found.status().IsNotFound()) Fail(kExitFailed, "no saga " + id);
  }
  OfflineEngine offline(common.data_dir);
  Outcome o = FromEngine(id, offline.Wait<SagaState>([&](auto done) {
    offline_call(offline.engine(), done);
  }));
  offline.Close();
  return o;
}

}  // namespace

int RunSagasCancel(const Common& common, const ChangeOptions& options,
                   const std::string& id, bool compensate) {
  const Route route = ChooseRoute(common.data_dir, options);
  const Outcome o =
      ChangeOne(common, route, options, id, "cancel_saga",
                {{"saga_id", id}, {"compensate", compensate}},
                [&](Engine& engine, auto done) {
                  engine.Cancel(id, compensate, kLocalCaller, done);
                });
  return Report(common, route, o, "cancelled");
}

int RunDlqReplay(const Common& common, const ChangeOptions& options,
                 const std::string& id, const std::string& from_step) {
  const Route route = ChooseRoute(common.data_dir, options);
  json args = {{"saga_id", id}};
  if (!from_step.empty()) args["from_step"] = from_step;
  const Outcome o =
      ChangeOne(common, route, options, id, "replay_saga", args,
                [&](Engine& engine, auto done) {
                  engine.Replay(id, from_step, kLocalCaller, done);
                });
  return Report(common, route, o, "replayed");
}

int RunDlqReplayAll(const Common& common, const ChangeOptions& options,
                    const std::string& workflow) {
  const Route route = ChooseRoute(common.data_dir, options);
  std::vector<json> entries;  // {saga_id, workflow, version, step}
  std::vector<Outcome> outcomes;
  auto entry_json = [](const std::string& saga_id, const std::string& wf,
                       uint32_t version, const std::string& step) {
    return json{{"saga_id", saga_id},
                {"workflow", wf},
                {"version", version},
                {"step", step}};
  };
  if (route.online) {
    McpSession mcp(route.mcp_url, Token(options));
    mcp.Open();
    std::string cursor;
    do {
      json args = {{"limit", 1000}};
      if (!workflow.empty()) args["workflow"] = workflow;
      if (!cursor.empty()) args["cursor"] = cursor;
      const json page = mcp.CallTool("list_dlq", args);
      const json sc = page.value("structuredContent", json::object());
      if (page.value("isError", false)) {
        Fail(kExitFailed,
             "list_dlq: " + sc.value("error", json::object())
                                .value("message", std::string("refused")));
      }
      for (const json& e : sc.value("entries", json::array())) {
        entries.push_back(
            entry_json(e.value("saga_id", ""), e.value("workflow", ""),
                       e.value("version", 0u), e.value("step", "")));
      }
      cursor = sc.contains("next_cursor") && sc["next_cursor"].is_string()
                   ? sc["next_cursor"].get<std::string>()
                   : "";
    } while (!cursor.empty());
    Bar bar(entries.size());
    size_t failed = 0;
    for (const json& e : entries) {
      const std::string id = e["saga_id"].get<std::string>();
      outcomes.push_back(
          FromTool(id, mcp.CallTool("replay_saga", {{"saga_id", id}})));
      if (outcomes.back().code != kExitOk) ++failed;
      bar.Update(outcomes.size(), failed);
    }
  } else {
    OfflineEngine offline(common.data_dir);
    DlqQuery q;
    if (!workflow.empty()) q.workflow = workflow;
    q.limit = 1000;
    do {
      DlqPage page = Check(offline.engine().store().ListDlq(q));
      for (const DlqRecord& d : page.entries) {
        entries.push_back(entry_json(d.saga_id, d.workflow, d.version, d.step));
      }
      q.cursor = page.next_cursor;
    } while (!q.cursor.empty());
    Bar bar(entries.size());
    size_t failed = 0;
    for (const json& e : entries) {
      const std::string id = e["saga_id"].get<std::string>();
      outcomes.push_back(FromEngine(id, offline.Wait<SagaState>([&](auto done) {
        offline.engine().Replay(id, "", kLocalCaller, done);
      })));
      if (outcomes.back().code != kExitOk) ++failed;
      bar.Update(outcomes.size(), failed);
    }
    bar.Done();
    offline.Close();
  }
  size_t failed = 0;
  json results = json::array();
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    json r = entries[i];
    r["ok"] = o.code == kExitOk;
    if (o.code == kExitOk) {
      r["state"] = o.state;
    } else {
      r["error"] = o.error;
      ++failed;
    }
    results.push_back(std::move(r));
  }
  const size_t replayed = outcomes.size() - failed;
  if (common.json) {
    json j = RouteJson(route);
    j["workflow"] = workflow.empty() ? json(nullptr) : json(workflow);
    j["total"] = outcomes.size();
    j["replayed"] = replayed;
    j["failed"] = failed;
    j["results"] = std::move(results);
    PrintJson(j);
  } else {
    for (const Outcome& o : outcomes) {
      if (o.code != kExitOk) {
        std::printf("%s  %s\n", o.saga_id.c_str(),
                    Paint("failed: " + o.error, Colour::kRed).c_str());
      }
    }
    std::printf(
        "replayed %zu of %zu parked saga%s%s %s%s\n", replayed, outcomes.size(),
        outcomes.size() == 1 ? "" : "s",
        workflow.empty() ? "" : (" of " + workflow).c_str(), Via(route).c_str(),
        failed == 0 ? ""
                    : (" (" + std::to_string(failed) + " failed)").c_str());
  }
  return failed == 0 ? kExitOk : kExitFailed;
}

namespace {

// The server's answer names the saga beside the entry (an older server's
// entry does not).
DlqRecord EntryFrom(const std::string& id, const json& answer) {
  DlqRecord d = DlqEntryFromJson(answer.value("entry", json::object()));
  d.saga_id = id;
  return d;
}

struct Purged {
  std::string saga_id;
  std::optional<DlqRecord> entry;  // nullopt: failed
  std::string error;
};

Purged PurgeOnline(const Route& route, const std::string& token,
                   const std::string& id) {
  const AdminReply r = PostAdminRaw(route.mcp_url, "/admin/dlq/purge",
                                    {{"saga_id", id}}, token, 60000L);
  if (r.status == 200 && r.body.is_object()) {
    return {id, EntryFrom(id, r.body), ""};
  }
  std::string why = r.body.is_object() && r.body.contains("error") &&
                            r.body["error"].is_string()
                        ? r.body["error"].get<std::string>()
                        : "HTTP " + std::to_string(r.status);
  if (r.status == 404 && !r.body.is_object()) {
    why = "the server has no /admin/dlq/purge endpoint (an older server?)";
  }
  return {id, std::nullopt, why};
}

Purged PurgeOffline(OfflineEngine& offline, const std::string& id) {
  auto r = offline.Wait<DlqRecord>(
      [&](auto done) { offline.engine().PurgeDlq(id, kLocalCaller, done); });
  if (r.ok()) return {id, *r, ""};
  return {id, std::nullopt,
          r.status().IsNotFound() ? NotFoundMessage(id, r.status().message())
                                  : r.status().message()};
}

}  // namespace

int RunDlqPurge(const Common& common, const ChangeOptions& options,
                const std::string& id) {
  const Route route = ChooseRoute(common.data_dir, options);
  Purged p;
  if (route.online) {
    p = PurgeOnline(route, Token(options), id);
  } else {
    {
      StoreAccess read = OpenForRead(common.data_dir);
      auto found = read.store->GetSaga(id);
      if (found.status().IsNotFound()) Fail(kExitFailed, "no saga " + id);
    }
    OfflineEngine offline(common.data_dir);
    p = PurgeOffline(offline, id);
    offline.Close();
  }
  if (!p.entry) Fail(kExitFailed, p.error);
  if (common.json) {
    json j = RouteJson(route);
    j["saga_id"] = id;
    j["entry"] = DlqJson(*p.entry);
    PrintJson(j);
  } else {
    std::printf("purged saga %s (%s@%u, parked %s at step %s) %s\n", id.c_str(),
                p.entry->workflow.c_str(), p.entry->version,
                FormatTime(p.entry->parked_ms).c_str(),
                p.entry->step.empty() ? "-" : p.entry->step.c_str(),
                Via(route).c_str());
  }
  return kExitOk;
}

int RunDlqPurgeOlderThan(const Common& common, const ChangeOptions& options,
                         const std::string& older_than,
                         const std::string& workflow) {
  const int64_t now = NowMs();
  const auto cutoff = ParseTime(older_than, now);
  if (!cutoff) {
    Fail(kExitUsage, "--older-than: '" + older_than +
                         "' is neither an RFC 3339 time "
                         "(2026-11-27T08:00:00Z) nor a time ago (15m, 2h, 3d)");
  }
  const Route route = ChooseRoute(common.data_dir, options);
  std::vector<std::string> ids;
  std::vector<Purged> done;
  size_t failed = 0;
  auto run = [&](const std::function<Purged(const std::string&)>& purge) {
    Bar bar(ids.size(), "purged");
    for (const std::string& id : ids) {
      done.push_back(purge(id));
      if (!done.back().entry) ++failed;
      bar.Update(done.size(), failed);
    }
  };
  if (route.online) {
    McpSession mcp(route.mcp_url, Token(options));
    mcp.Open();
    std::string cursor;
    do {
      json args = {{"limit", 1000}};
      if (!workflow.empty()) args["workflow"] = workflow;
      if (!cursor.empty()) args["cursor"] = cursor;
      const json page = mcp.CallTool("list_dlq", args);
      const json sc = page.value("structuredContent", json::object());
      if (page.value("isError", false)) {
        Fail(kExitFailed,
             "list_dlq: " + sc.value("error", json::object())
                                .value("message", std::string("refused")));
      }
      for (const json& e : sc.value("entries", json::array())) {
        if (e.value("parked_ms", int64_t{0}) <= *cutoff) {
          ids.push_back(e.value("saga_id", ""));
        }
      }
      cursor = sc.contains("next_cursor") && sc["next_cursor"].is_string()
                   ? sc["next_cursor"].get<std::string>()
                   : "";
    } while (!cursor.empty());
    const std::string token = Token(options);
    run([&](const std::string& id) { return PurgeOnline(route, token, id); });
  } else {
    OfflineEngine offline(common.data_dir);
    DlqQuery q;
    if (!workflow.empty()) q.workflow = workflow;
    q.limit = 1000;
    do {
      DlqPage page = Check(offline.engine().store().ListDlq(q));
      for (const DlqRecord& d : page.entries) {
        if (d.parked_ms <= *cutoff) ids.push_back(d.saga_id);
      }
      q.cursor = page.next_cursor;
    } while (!q.cursor.empty());
    run([&](const std::string& id) { return PurgeOffline(offline, id); });
    offline.Close();
  }
  const size_t purged = done.size() - failed;
  if (common.json) {
    json j = RouteJson(route);
    j["workflow"] = workflow.empty() ? json(nullptr) : json(workflow);
    j["older_than_ms"] = *cutoff;
    j["older_than_at"] = TimeJson(*cutoff);
    j["total"] = done.size();
    j["purged"] = purged;
    j["failed"] = failed;
    json results = json::array();
    for (const Purged& p : done) {
      json r = {{"saga_id", p.saga_id}, {"ok", p.entry.has_value()}};
      if (p.entry) {
        r["entry"] = DlqJson(*p.entry);
      } else {
        r["error"] = p.error;
      }
      results.push_back(std::move(r));
    }
    j["results"] = std::move(results);
    PrintJson(j);
  } else {
    for (const Purged& p : done) {
      if (!p.entry) {
        std::printf("%s  %s\n", p.saga_id.c_str(),
                    Paint("failed: " + p.error, Colour::kRed).c_str());
      }
    }
    std::printf(
        "purged %zu of %zu saga%s parked before %s%s %s%s\n", purged,
        done.size(), done.size() == 1 ? "" : "s", FormatTime(*cutoff).c_str(),
        workflow.empty() ? "" : (" of " + workflow).c_str(), Via(route).c_str(),
        failed == 0 ? ""
                    : (" (" + std::to_string(failed) + " failed)").c_str());
  }
  return failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace cde::admin

namespace cde::admin {

namespace {

// The input a start gives the saga: --input, --input-file or --example
// (the definition's first example), at most one; {} when none.
json StartInput(const Common& common, const StartOptions& start,
                const WorkflowSpec& spec) {
  const int given = !start.input.empty() + !start.input_file.empty() +
                    static_cast<int>(start.example);
  if (given > 1) {
    Fail(kExitUsage, "give one of --input, --input-file and --example");
  }
  auto parse = [](const std::string& text, const std::string& where) {
    json input = json::parse(text, nullptr, false);
    if (input.is_discarded()) Fail(kExitUsage, where + ": not JSON");
    return input;
  };
  if (!start.input.empty()) return parse(start.input, "--input");
  if (!start.input_file.empty()) {
    std::string text;
    if (start.input_file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      std::ifstream in(start.input_file);
      if (!in)
        Fail(kExitUsage, "--input-file: cannot read " + start.input_file);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    return parse(text, "--input-file " + start.input_file);
  }
  if (!start.example) return json::object();
  StoreAccess read = OpenForRead(common.data_dir);
  const auto defs = Check(read.store->ListDefinitions());
  const DefinitionRecord& def = FindDefinition(defs, spec);
  const json& doc = def.definition;
  if (!doc.is_object() || !doc.contains("examples") ||
      !doc["examples"].is_array() || doc["examples"].empty()) {
    Fail(kExitFailed, "workflow " + def.name + "@" +
                          std::to_string(def.version) +
                          " has no example input; give --input");
  }
  return doc["examples"][0];
}

}  // namespace

int RunSagasStart(const Common& common, const ChangeOptions& options,
                  const StartOptions& start) {
  const WorkflowSpec spec = ParseWorkflowSpec(start.workflow);
  if (start.wait_ms < 0 || start.wait_ms > 600000) {
    Fail(kExitUsage, "--wait-ms: from 0 to 600000");
  }
  const json input = StartInput(common, start, spec);
  const Route route = ChooseRoute(common.data_dir, options);
  std::string saga_id, state;
  bool created = true, timed_out = false;
  if (route.online) {
    json args = {{"workflow", spec.name}, {"input", input}};
    if (spec.version) args["version"] = *spec.version;
    if (!start.idempotency_key.empty()) {
      args["idempotency_key"] = start.idempotency_key;
    }
    if (start.wait_ms > 0) args["wait_ms"] = start.wait_ms;
    McpSession mcp(route.mcp_url, Token(options));
    mcp.set_timeout_ms(60000 + static_cast<long>(start.wait_ms));
    mcp.Open();
    const json result = mcp.CallTool("start_workflow", args);
    const json sc = result.value("structuredContent", json::object());
    if (result.value("isError", false)) {
      Fail(kExitFailed, sc.value("error", json::object())
                            .value("message", "the server refused the start"));
    }
    saga_id = sc.value("saga_id", "");
    state = sc.value("state", "");
    created = sc.value("created", true);
    timed_out = sc.value("timed_out", false);
    if (sc.contains("saga") && sc["saga"].is_object()) {
      state = sc["saga"].value("state", state);
    }
  } else {
    if (start.wait_ms > 0) {
      Fail(kExitUsage,
           "--wait-ms needs a running server: offline, the saga runs when a "
           "server next starts on this store");
    }
    {  // refused before the store is opened for writing
      StoreAccess read = OpenForRead(common.data_dir);
      FindDefinition(Check(read.store->ListDefinitions()), spec);
    }
    OfflineEngine offline(common.data_dir);
    StartRequest req;
    req.workflow = spec.name;
    req.version = spec.version;
    req.input = input;
    req.idempotency_key = start.idempotency_key;
    req.started_by = kLocalCaller;
    auto r = offline.Wait<StartResult>(
        [&](auto done) { offline.engine().Start(req, done); });
    if (!r.ok()) Fail(kExitFailed, r.status().message());
    offline.Close();
    saga_id = r->saga_id;
    state = std::string(SagaStateName(r->state));
    created = r->created;
  }
  if (common.json) {
    json j = RouteJson(route);
    j["saga_id"] = saga_id;
    j["state"] = state;
    j["created"] = created;
    if (timed_out) j["timed_out"] = true;
    PrintJson(j);
    return kExitOk;
  }
  std::printf(
      "%s saga %s of %s %s: now %s%s%s\n",
      created ? "started" : "idempotency key already used by", saga_id.c_str(),
      start.workflow.c_str(), Via(route).c_str(),
      Paint(state, StateColour(state)).c_str(),
      timed_out
          ? (" (still, after " + std::to_string(start.wait_ms) + " ms)").c_str()
          : "",
      route.online ? "" : OfflineNote(state));
  return kExitOk;
}

}  // namespace cde::admin
