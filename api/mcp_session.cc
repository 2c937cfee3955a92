#include "api/mcp_session.h"

#include <algorithm>
#include <cctype>

#include "api/jsonrpc.h"
#include "api/mcp_util.h"
#include "engine/log.h"
#include "storage/saga_id.h"

namespace cde {

using nlohmann::json;

namespace {

// At most this many values per completion (the spec's limit).
constexpr size_t kMaxCompletions = 100;

// The store queries that find the saga ids starting with `prefix`, newest
// first: active sagas (each active state), then all sagas. Saga ids sort by
// creation time, so the prefix bounds the creation time; a longer prefix
// also bounds the scan from above (exclusive: the one id ending in all 'Z's
// is missed). None if no saga id can start with `prefix`.
std::vector<SagaQuery> SagaIdQueries(const std::string& prefix) {
  std::vector<SagaQuery> out;
  if (prefix.size() > kSagaIdLength) return out;
  SagaQuery base;
  base.limit = kMaxCompletions + 1;
  if (!prefix.empty()) {
    const size_t pad = kSagaIdLength - prefix.size();
    const std::string hi = prefix + std::string(pad, 'Z');
    auto since = SagaIdTimeMs(prefix + std::string(pad, '0'));
    auto until = SagaIdTimeMs(hi);
    if (!since || !until) return out;
    base.since_ms = since;
    base.until_ms = until;
    if (prefix.size() > 10 && pad > 0) base.cursor = hi;
  }
  for (SagaState state : {SagaState::kRunning, SagaState::kCompensating,
                          SagaState::kCancelling}) {
    SagaQuery q = base;
    q.state = state;
    out.push_back(std::move(q));
  }
  out.push_back(std::move(base));
  return out;
}

json Completion(std::vector<std::string> values, bool more) {
  json c = {{"values", json::array()}};
  const size_t total = values.size();
  for (size_t i = 0; i < values.size() && i < kMaxCompletions; ++i) {
    c["values"].push_back(std::move(values[i]));
  }
  if (!more) c["total"] = total;
  c["hasMore"] = more || total > kMaxCompletions;
  return {{"completion", std::move(c)}};
}

std::string ForbiddenMessage(const Principal& caller, Scope scope,
                             const std::string& what) {
  return "token '" + caller.name + "' lacks the scope '" +
         std::string(ScopeName(scope)) + "' that " + what +
         " needs (auth.tokens in the server's configuration grants scopes)";
}

}  // namespace

std::shared_ptr<McpSession> McpSession::Create(Engine* engine, uv_loop_t* loop,
                                               Send send,
                                               McpSessionOptions options) {
  return std::shared_ptr<McpSession>(
      new McpSession(engine, loop, std::move(send), std::move(options)));
}

McpSession::~McpSession() { Close(); }

void McpSession::Close() {
  if (closed_) return;
  closed_ = true;
  CloseWaits();
  for (uint64_t w : watches_) engine_->Unwatch(w);
  watches_.clear();
}

void McpSession::OnFrame(std::string_view text,
                         const McpMessageContext& context) {
  if (closed_) return;
  OnMessage(jsonrpc::Decode(text), context);
}

void McpSession::OnMessage(jsonrpc::Message msg,
                           const McpMessageContext& context) {
  if (closed_) return;
  if (auto* err = std::get_if<jsonrpc::DecodeError>(&msg)) {
    return send_({jsonrpc::EncodeError(err->id, err->code, err->message),
                  err->id, true});
  }
  if (auto* req = std::get_if<jsonrpc::Request>(&msg)) {
    // initialize and ping stay open: a limited client can still (re)connect
    // and check that the server is alive.
    if (req->method != "initialize" && req->method != "ping") {
      if (const int64_t wait = TakeToken(context); wait > 0) {
        return ReplyErrorData(
            req->id, kRateLimited,
            "rate limit exceeded: retry in " + std::to_string(wait) + " ms",
            {{"retry_after_ms", wait}});
      }
    }
    // The edge of the server: a bug in one handler answers its request with
    // an internal error instead of ending every session and saga in flight.
    // fuzz_mcp_session fails on these replies, so they are still found.
    try {
      return OnRequest(req->id, req->method, req->params, context);
    } catch (const std::exception& e) {
      ::cde::Log(LogLevel::kError, "mcp", "request handler failed",
                 {.extra = {{"method", req->method}, {"error", e.what()}}});
      return ReplyError(
          req->id, jsonrpc::kInternalError,
          std::string(kHandlerFailed) + req->method + ": " + e.what());
    }
  }
  if (auto* note = std::get_if<jsonrpc::Notification>(&msg)) {
    try {
      return OnNotification(note->method, note->params);
    } catch (const std::exception& e) {  // as for requests, but no reply
      ::cde::Log(LogLevel::kError, "mcp", "notification handler failed",
                 {.extra = {{"method", note->method}, {"error", e.what()}}});
    }
  }
  // Responses to requests we never sent are ignored.
}

void McpSession::OnNotification(const std::string& method, const json& params) {
  if (method == "notifications/initialized") initialized_ = true;
  if (method == "notifications/cancelled") CancelRequest(params);
  // Other notifications need no answer.
}

int64_t McpSession::TakeToken(const McpMessageContext& context) {
  if (options_.limiter == nullptr) return 0;
  const std::string& key =
      context.rate_key.empty() ? options_.rate_key : context.rate_key;
  return options_.limiter->TryTake(key, static_cast<int64_t>(uv_now(loop_)));
}

void McpSession::OnRequest(const json& id, const std::string& method,
                           const json& params,
                           const McpMessageContext& context) {
  const json p = params.is_object() ? params : json::object();
  if (method == "initialize") {
    auto asked_it = p.find("protocolVersion");
    if (asked_it != p.end() && !asked_it->is_string()) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.protocolVersion: must be a string (a "
                        "protocol version such as \"" +
                            std::string(kProtocolVersions[0]) + "\")");
    }
    const std::string asked =
        asked_it == p.end() ? std::string() : asked_it->get<std::string>();
    if (version_.empty()) AnnounceNewWorkflows();
    version_ = kProtocolVersions[0];
    for (const char* v : kProtocolVersions) {
      if (asked == v) version_ = v;
    }
    json capabilities = {
        {"tools", {{"listChanged", options_.workflow_tools}}},
        {"resources", {{"subscribe", true}, {"listChanged", false}}},
        {"prompts", {{"listChanged", false}}},
        {"logging", json::object()},
        {"completions", json::object()},
        {"tasks",
         {{"list", json::object()},
          {"cancel", json::object()},
          {"requests", {{"tools", {{"call", json::object()}}}}}}}};
    return Reply(id, {{"protocolVersion", version_},
                      {"capabilities", capabilities},
                      {"serverInfo",
                       {{"name", "cde-orchestrator"},
                        {"title", "CDE Orchestrator"},
                        {"version", "0.1.0"}}},
                      {"instructions",
                       "Durable sagas: register_workflow, start_workflow, "
                       "then get_saga to follow a saga."}});
  }
  if (method == "ping") return Reply(id, json::object());
  if (version_.empty()) {
    return ReplyError(id, jsonrpc::kInvalidRequest,
                      "the session is not initialized: send initialize "
                      "first");
  }
  if (auto scope = MethodScope(method);
      scope && !context.caller.scopes.Has(*scope)) {
    return ReplyErrorData(
        id, kForbidden, ForbiddenMessage(context.caller, *scope, method),
        {{"code", "forbidden"}, {"scope", ScopeName(*scope)}});
  }
  if (method == "tools/list") {
    // One page: the only valid cursor is none (the spec's -32602 otherwise).
    if (auto c = p.find("cursor");
        c != p.end() && !c->is_null() &&
        (!c->is_string() || !c->get_ref<const std::string&>().empty())) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.cursor: not a cursor of tools/list (it "
                        "returns a single page)");
    }
    return Reply(id, {{"tools", ListTools()}});
  }
  if (method == "logging/setLevel") return SetLogLevel(id, p);
  if (method == "completion/complete") return Complete(id, p);
  if (method == "tools/call") {
    auto name = p.find("name");
    if (name == p.end() || !name->is_string()) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.name: must be the name of a tool");
    }
    const json args = p.value("arguments", json::object());
    if (!args.is_object()) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.arguments: must be an object");
    }
    const json meta = p.value("_meta", json::object());
    if (auto scope = ToolScope(name->get<std::string>());
        scope && !context.caller.scopes.Has(*scope)) {
      const std::string message =
          ForbiddenMessage(context.caller, *scope, name->get<std::string>());
      return Reply(
          id,
          {{"content", {{{"type", "text"}, {"text", "forbidden: " + message}}}},
           {"structuredContent",
            {{"error",
              {{"code", "forbidden"},
               {"message", message},
               {"scope", ScopeName(*scope)}}}}},
           {"isError", true}});
    }
    if (auto scope = ToolScope(name->get<std::string>());
        scope && *scope != Scope::kRead) {
      AuditCall(context.caller, name->get<std::string>(), args);
    }
    if (auto task = p.find("task"); task != p.end() && !task->is_null()) {
      return CallToolAsTask(id, name->get<std::string>(), args, *task, meta,
                            context);
    }
    return CallTool(id, name->get<std::string>(), args, meta, context);
  }
  if (OnPromptRequest(id, method, p)) return;
  if (OnResourceRequest(id, method, p)) return;
  if (OnTaskRequest(id, method, p, context.caller)) return;
  ReplyError(id, jsonrpc::kMethodNotFound,
             "method '" + method + "' is not supported");
}

// One line per call that may change something, whatever its outcome: who
// asked for what. (The saga's own log says what happened.)
void McpSession::AuditCall(const Principal& caller, const std::string& tool,
                           const json& args) {
  json extra = {{"caller", caller.name}, {"tool", tool}};
  for (const char* key : {"workflow", "saga_id", "idempotency_key"}) {
    if (auto it = args.find(key); it != args.end() && it->is_string()) {
      extra[key] = *it;
    }
  }
  if (auto def = args.find("definition");
      def != args.end() && def->is_object()) {
    extra["workflow"] = def->value("name", json());
  }
  ::cde::Log(LogLevel::kInfo, "audit", "call", {.extra = std::move(extra)});
}

std::optional<Scope> McpSession::MethodScope(const std::string& method) {
  if (method.starts_with("resources/") || method.starts_with("prompts/") ||
      method == "completion/complete" || method == "tasks/list" ||
      method == "tasks/get" || method == "tasks/result") {
    return Scope::kRead;
  }
  if (method == "tasks/cancel") return Scope::kRun;
  return std::nullopt;
}

uint64_t McpSession::WatchSaga(const std::string& saga_id,
                               std::function<void(const Saga&)> on_change) {
  const uint64_t w = engine_->Watch(saga_id, std::move(on_change));
  watches_.insert(w);
  return w;
}

void McpSession::UnwatchSaga(uint64_t watch_id) {
  if (watches_.erase(watch_id) != 0) engine_->Unwatch(watch_id);
}

void McpSession::Reply(const json& id, const json& result) {
  if (!closed_) send_({jsonrpc::EncodeResult(id, result), id, true});
}

void McpSession::ReplyError(const json& id, int code, const std::string& msg) {
  if (!closed_) send_({jsonrpc::EncodeError(id, code, msg), id, true});
}

void McpSession::Notify(const std::string& method, const json& params,
                        const json& related) {
  if (closed_) return;
  send_(
      {json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}}.dump(),
       related, false});
}

json McpSession::ToolResultJson(json structured) {
  std::string text = structured.dump();
  return {{"content", {{{"type", "text"}, {"text", std::move(text)}}}},
          {"structuredContent", std::move(structured)},
          {"isError", false}};
}

json McpSession::ToolErrorJson(const Status& status) {
  const json error = {{"code", mcp::ErrorCode(status)},
                      {"message", status.message()}};
  return {{"content",
           {{{"type", "text"},
             {"text",
              error["code"].get<std::string>() + ": " + status.message()}}}},
          {"structuredContent", {{"error", error}}},
          {"isError", true}};
}

void McpSession::ToolResult(const json& id, json structured) {
  if (!closed_) send_({mcp::EncodeToolResult(id, structured), id, true});
}

void McpSession::ToolResultText(const json& id, std::string_view structured) {
  if (!closed_) send_({mcp::EncodeToolResultText(id, structured), id, true});
}

void McpSession::ToolError(const json& id, const Status& status) {
  Reply(id, ToolErrorJson(status));
}

void McpSession::Complete(const json& id, const json& p) {
  auto invalid = [&](const std::string& msg) {
    ReplyError(id, jsonrpc::kInvalidParams, msg);
  };
  auto ref = p.find("ref");
  if (ref == p.end() || !ref->is_object() || !ref->contains("type") ||
      !(*ref)["type"].is_string()) {
    return invalid("params.ref: must be an object with a type");
  }
  auto arg = p.find("argument");
  if (arg == p.end() || !arg->is_object() || !arg->contains("name") ||
      !(*arg)["name"].is_string() || !arg->contains("value") ||
      !(*arg)["value"].is_string()) {
    return invalid("params.argument: must be {name, value} with strings");
  }
  json known = json::object();  // context.arguments
  if (auto c = p.find("context"); c != p.end() && !c->is_null()) {
    if (!c->is_object()) return invalid("params.context: must be an object");
    if (auto a = c->find("arguments"); a != c->end() && !a->is_null()) {
      if (!a->is_object()) {
        return invalid("params.context.arguments: must be an object");
      }
      known = *a;
    }
  }
  const auto type = (*ref)["type"].get<std::string>();
  const auto name = (*arg)["name"].get<std::string>();
  const auto value = (*arg)["value"].get<std::string>();
  if (type == "ref/prompt") {
    if (!ref->contains("name") || !(*ref)["name"].is_string()) {
      return invalid("params.ref.name: must be a string");
    }
    return CompletePromptArgument(id, (*ref)["name"].get<std::string>(), name,
                                  value);
  }
  if (type != "ref/resource") {
    return invalid(
        R"(params.ref.type: must be "ref/prompt" or "ref/resource")");
  }
  if (!ref->contains("uri") || !(*ref)["uri"].is_string()) {
    return invalid("params.ref.uri: must be a string");
  }
  const auto uri = (*ref)["uri"].get<std::string>();
  auto no_variable = [&] {
    invalid("params.argument.name: the template " + uri + " has no variable '" +
            name + "'");
  };
  if (uri == "workflow://{name}/{version}") {
    std::vector<std::string> values;
    if (name == "name") {
      values = WorkflowNamesStartingWith(value);
    } else if (name == "version") {
      const json wf = known.value("name", json());
      std::vector<uint32_t> versions;
      for (auto& def : engine_->ListWorkflows()) {
        if (wf.is_string() && def->name == wf.get<std::string>() &&
            std::to_string(def->version).starts_with(value)) {
          versions.push_back(def->version);
        }
      }
      std::sort(versions.rbegin(), versions.rend());  // newest first
      for (uint32_t v : versions) values.push_back(std::to_string(v));
    } else {
      return no_variable();
    }
    return Reply(id, Completion(std::move(values), false));
  }
  if (uri != "saga://{saga_id}" && uri != "saga://{saga_id}/log") {
    return invalid(
        "params.ref.uri: not a resource template of this server "
        "(saga://{saga_id}, saga://{saga_id}/log, "
        "workflow://{name}/{version})");
  }
  if (name != "saga_id") return no_variable();
  CompleteSagaIds(id, value);
}

void McpSession::CompletePromptArgument(const json& id,
                                        const std::string& prompt,
                                        const std::string& argument,
                                        const std::string& value) {
  const json* known = nullptr;
  for (const json& p : Prompts()) {
    if (p["name"] == prompt) known = &p;
  }
  if (known == nullptr) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.ref.name: no prompt '" + prompt + "'");
  }
  bool has_argument = false;
  for (const json& a : (*known)["arguments"]) {
    has_argument = has_argument || a["name"] == argument;
  }
  if (!has_argument) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.argument.name: the prompt " + prompt +
                          " has no argument '" + argument + "'");
  }
  if (argument == "saga_id") return CompleteSagaIds(id, value);
  if (argument == "workflow") {
    return Reply(id, Completion(WorkflowNamesStartingWith(value), false));
  }
  Reply(id, Completion({}, false));  // free text
}

std::vector<std::string> McpSession::WorkflowNamesStartingWith(
    const std::string& value) const {
  std::set<std::string> names;
  for (auto& def : engine_->ListWorkflows()) {
    if (def->name.starts_with(value)) names.insert(def->name);
  }
  return {names.begin(), names.end()};
}

void McpSession::CompleteSagaIds(const json& id, const std::string& value) {
  std::string prefix = value;  // saga ids are upper case (Crockford base32)
  for (char& c : prefix) c = static_cast<char>(std::toupper(c));
  std::vector<SagaQuery> queries = SagaIdQueries(prefix);
  if (queries.empty()) return Reply(id, Completion({}, false));
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<std::vector<SagaPage>>(
      *engine_,
      [queries](Store& store) -> Result<std::vector<SagaPage>> {
        std::vector<SagaPage> pages;
        for (const SagaQuery& q : queries) {
          auto page = store.ListSagas(q);
          if (!page.ok()) return page.status();
          pages.push_back(std::move(page).value());
        }
        return pages;
      },
      [weak, id, prefix](Result<std::vector<SagaPage>> r) {
        auto self = weak.lock();
        if (!self) return;
        if (!r.ok()) {
          return self->ReplyError(id, jsonrpc::kInternalError,
                                  r.status().ToString());
        }
        std::vector<std::string> ids;
        std::set<std::string> seen;
        bool more = false;
        for (const SagaPage& page : *r) {
          more = more || !page.next_cursor.empty();
          for (const SagaRecord& rec : page.sagas) {
            if (rec.id.starts_with(prefix) && seen.insert(rec.id).second) {
              ids.push_back(rec.id);
            }
          }
        }
        self->Reply(id, Completion(std::move(ids), more));
      });
}

}  // namespace cde
