// Resources: saga://{saga_id}, saga://{saga_id}/log,
// workflow://{name}/{version} (docs/mcp.md, "Resources").
//
// Everything is read from the engine (sagas in memory) or from the store off
// the loop thread (Engine::ReadSaga, QueryStore); the session keeps only
// its subscriptions.
#include <limits>
#include <tuple>

#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"
#include "engine/secrets.h"
#include "storage/saga_id.h"

namespace cde {

using nlohmann::json;

namespace {

// MCP's "Resource not found".
constexpr int kResourceNotFound = -32002;
// Items per resources/list page.
constexpr size_t kResourcePage = 100;
// Log events per read of saga://{id}/log.
constexpr size_t kLogEvents = 1000;
constexpr const char* kJson = "application/json";

struct ResourceUri {
  enum class Kind { kSaga, kSagaLog, kWorkflow };
  Kind kind = Kind::kSaga;
  std::string saga_id;
  std::string name;
  uint32_t version = 0;
};

// The parts of `uri`, or InvalidArgument saying what is wrong with it.
Result<ResourceUri> ParseUri(const std::string& uri) {
  const std::string_view kSaga = "saga://", kWorkflow = "workflow://";
  ResourceUri r;
  if (uri.starts_with(kSaga)) {
    std::string rest = uri.substr(kSaga.size());
    if (rest.ends_with("/log")) {
      r.kind = ResourceUri::Kind::kSagaLog;
      rest.resize(rest.size() - 4);
    }
    if (!IsSagaId(rest)) {
      return Status::InvalidArgument(
          "'" + rest +
          "' is not a saga id (26 characters of Crockford base32); expected "
          "saga://{saga_id} or saga://{saga_id}/log");
    }
    r.saga_id = rest;
    return r;
  }
  if (uri.starts_with(kWorkflow)) {
    const std::string rest = uri.substr(kWorkflow.size());
    const size_t slash = rest.find('/');
    const std::string version =
        slash == std::string::npos ? "" : rest.substr(slash + 1);
    const bool digits =
        !version.empty() && version.size() <= 10 && version[0] != '0' &&
        version.find_first_not_of("0123456789") == std::string::npos;
    if (slash == 0 || slash == std::string::npos || !digits ||
        std::stoull(version) > std::numeric_limits<uint32_t>::max()) {
      return Status::InvalidArgument(
          "expected workflow://{name}/{version} with version an integer >= "
          "1");
    }
    r.kind = ResourceUri::Kind::kWorkflow;
    r.name = rest.substr(0, slash);
    r.version = static_cast<uint32_t>(std::stoul(version));
    return r;
  }
  return Status::InvalidArgument(
      "unknown resource; this server serves saga://{saga_id}, "
      "saga://{saga_id}/log and workflow://{name}/{version}");
}

std::string WorkflowUri(const std::string& name, uint32_t version) {
  return "workflow://" + name + "/" + std::to_string(version);
}

json WorkflowResource(const WorkflowDefinition& def) {
  const std::string label = def.name + " v" + std::to_string(def.version);
  const std::string steps = std::to_string(def.steps.size()) +
                            (def.steps.size() == 1 ? " step" : " steps");
  return {{"uri", WorkflowUri(def.name, def.version)},
          {"name", label},
          {"title", "Workflow " + label},
          {"description",
           def.description.empty()
               ? "Definition of workflow " + label + " (" + steps + ")"
               : def.description + " (" + steps + ")"},
          {"mimeType", kJson}};
}

json SagaResource(const SagaRecord& r) {
  const std::string state(SagaStateName(r.state));
  const std::string workflow = r.workflow + " v" + std::to_string(r.version);
  return {{"uri", "saga://" + r.id},
          {"name", "saga " + r.id},
          {"title", workflow + " saga, " + state},
          {"description", "Saga " + r.id + " of workflow " + workflow +
                              ", created " + mcp::IsoTime(r.created_ms) + ", " +
                              state + ". Its log: saga://" + r.id + "/log"},
          {"mimeType", kJson},
          {"annotations", {{"lastModified", mcp::IsoTime(r.updated_ms)}}}};
}

// One item of a resources/read result (and of an embedded resource).
json Contents(const std::string& uri, const json& doc) {
  return {{"uri", uri}, {"mimeType", kJson}, {"text", doc.dump(2)}};
}

// The first events of a saga's log, read off the loop.
struct LogRead {
  SagaRecord saga;
  std::vector<LogRecord> events;
};

}  // namespace

void McpSession::ReplyErrorData(const json& id, int code,
                                const std::string& msg, const json& data) {
  if (!closed_) send_({jsonrpc::EncodeError(id, code, msg, data), id, true});
}

bool McpSession::OnResourceRequest(const json& id, const std::string& method,
                                   const json& params) {
  if (method == "resources/list") {
    ListResources(id, params);
    return true;
  }
  if (method == "resources/templates/list") {
    // One page: the only valid cursor is none.
    if (auto c = params.find("cursor"); c != params.end() && !c->is_null() &&
                                        (!c->is_string() || !c->empty())) {
      ReplyError(id, jsonrpc::kInvalidParams,
                 "params.cursor: not a cursor of resources/templates/list (it "
                 "returns a single page)");
      return true;
    }
    static const json templates = json::array({
        {{"uriTemplate", "saga://{saga_id}"},
         {"name", "saga"},
         {"title", "Saga snapshot"},
         {"description",
          "State, per-step status, attempts, outputs and errors of a saga "
          "(what get_saga returns)."},
         {"mimeType", kJson}},
        {{"uriTemplate", "saga://{saga_id}/log"},
         {"name", "saga-log"},
         {"title", "Saga log"},
         {"description",
          "The events of a saga's durable log, oldest first "
          "(the first 1000; get_saga_log pages further)."},
         {"mimeType", kJson}},
        {{"uriTemplate", "workflow://{name}/{version}"},
         {"name", "workflow"},
         {"title", "Workflow definition"},
         {"description",
          "A registered workflow definition document, as registered."},
         {"mimeType", kJson}},
    });
    Reply(id, {{"resourceTemplates", templates}});
    return true;
  }
  const bool read = method == "resources/read";
  const bool subscribe = method == "resources/subscribe";
  const bool unsubscribe = method == "resources/unsubscribe";
  if (!read && !subscribe && !unsubscribe) return false;
  auto uri = params.find("uri");
  if (uri == params.end() || !uri->is_string()) {
    ReplyError(id, jsonrpc::kInvalidParams,
               "params.uri: must be a resource URI string");
    return true;
  }
  const std::string u = uri->get<std::string>();
  if (read) {
    ReadResource(id, u);
  } else if (subscribe) {
    Subscribe(id, u);
  } else {
    Unsubscribe(id, u);
  }
  return true;
}

// Pages hold up to kResourcePage items: every workflow version (by name,
// then version), then the sagas, newest first. The cursor is the position
// after the last item: "w<name>\n<version>" within the workflows, or
// "s<store cursor>" within the sagas (an empty store cursor: the first).
void McpSession::ListResources(const json& id, const json& params) {
  std::string position;
  if (auto c = params.find("cursor"); c != params.end() && !c->is_null()) {
    auto decoded = c->is_string() ? mcp::DecodeCursor(c->get<std::string>())
                                  : std::nullopt;
    if (!decoded || decoded->empty() ||
        (decoded->front() != 'w' && decoded->front() != 's')) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.cursor: not a cursor of this server's "
                        "resources/list");
    }
    position = *decoded;
  }
  json resources = json::array();
  if (position.empty() || position.front() == 'w') {
    std::string after_name;
    uint32_t after_version = 0;
    if (!position.empty()) {
      const size_t nl = position.find('\n');
      if (nl == std::string::npos) {
        return ReplyError(id, jsonrpc::kInvalidParams,
                          "params.cursor: not a cursor of this server's "
                          "resources/list");
      }
      after_name = position.substr(1, nl - 1);
      after_version = static_cast<uint32_t>(
          std::strtoul(position.c_str() + nl + 1, nullptr, 10));
    }
    bool more = false;
    for (const auto& def : engine_->ListWorkflows()) {  // by name, version
      if (!position.empty() && std::tie(def->name, def->version) <=
                                   std::tie(after_name, after_version)) {
        continue;
      }
      if (resources.size() == kResourcePage) {
        more = true;
        break;
      }
      resources.push_back(WorkflowResource(*def));
      after_name = def->name;
      after_version = def->version;
    }
    if (more) {
      // Continue after the last workflow listed.
      return Reply(id, {{"resources", resources},
                        {"nextCursor",
                         mcp::EncodeCursor("w" + after_name + "\n" +
                                           std::to_string(after_version))}});
    }
    position = "s";
  }
  // The sagas, from the store off the loop. A full page still asks for one
  // saga, to know whether a next page exists.
  const size_t room = kResourcePage - resources.size();
  SagaQuery query{.limit = room == 0 ? 1 : room, .cursor = position.substr(1)};
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<SagaPage>(
      *engine_, [query](Store& s) { return s.ListSagas(query); },
      [weak, id, room,
       resources = std::move(resources)](Result<SagaPage> page) mutable {
        auto self = weak.lock();
        if (!self) return;
        if (!page.ok()) {
          if (page.status().IsInvalidArgument()) {
            return self->ReplyError(id, jsonrpc::kInvalidParams,
                                    "params.cursor: not a cursor of this "
                                    "server's resources/list");
          }
          return self->ReplyError(id, jsonrpc::kInternalError,
                                  "listing sagas: " + page.status().ToString());
        }
        json result;
        if (room == 0) {
          if (!page->sagas.empty()) {
            result["nextCursor"] = mcp::EncodeCursor("s");
          }
        } else {
          for (const SagaRecord& r : page->sagas) {
            resources.push_back(SagaResource(r));
          }
          if (!page->next_cursor.empty()) {
            result["nextCursor"] = mcp::EncodeCursor("s" + page->next_cursor);
          }
        }
        result["resources"] = std::move(resources);
        self->Reply(id, result);
      });
}

void McpSession::ReadResource(const json& id, const std::string& uri) {
  std::weak_ptr<McpSession> weak = weak_from_this();
  ResourceContents(uri, [weak, id, uri](Result<json> contents) {
    auto self = weak.lock();
    if (!self) return;
    if (contents.ok()) {
      return self->Reply(id, {{"contents", json::array({*contents})}});
    }
    const Status& st = contents.status();
    if (st.IsInvalidArgument()) {
      return self->ReplyError(id, jsonrpc::kInvalidParams,
                              "params.uri: " + st.message());
    }
    // -32002 for a resource that does not exist.
    if (st.IsNotFound()) {
      return self->ReplyErrorData(id, kResourceNotFound, "Resource not found",
                                  {{"uri", uri}});
    }
    self->ReplyError(id, jsonrpc::kInternalError,
                     "reading " + uri + ": " + st.ToString());
  });
}

void McpSession::ResourceContents(const std::string& uri,
                                  std::function<void(Result<json>)> done) {
  auto parsed = ParseUri(uri);
  if (!parsed.ok()) return done(parsed.status());
  switch (parsed->kind) {
    case ResourceUri::Kind::kSaga:
      return engine_->ReadSaga(
          parsed->saga_id, [engine = engine_, uri, done](Result<SagaRecord> r) {
            if (!r.ok()) return done(r.status());
            done(Contents(uri, mcp::SagaJson(*engine, std::move(*r))));
          });
    case ResourceUri::Kind::kSagaLog:
      return QueryStore<LogRead>(
          *engine_,
          [saga_id = parsed->saga_id](Store& s) -> Result<LogRead> {
            auto saga = s.GetSaga(saga_id);
            if (!saga.ok()) return saga.status();
            auto events = s.ReadLog(saga_id, 1, kLogEvents + 1);
            if (!events.ok()) return events.status();
            return LogRead{std::move(saga).value(), std::move(events).value()};
          },
          [uri, done](Result<LogRead> r) {
            if (!r.ok()) return done(r.status());
            const bool truncated = r->events.size() > kLogEvents;
            if (truncated) r->events.resize(kLogEvents);
            json events = json::array();
            for (const LogRecord& e : r->events) {
              events.push_back(mcp::LogJson(e));
            }
            json doc = {{"saga_id", r->saga.id},
                        {"state", SagaStateName(r->saga.state)},
                        {"last_seq", r->saga.last_seq},
                        {"events", std::move(events)},
                        {"truncated", truncated}};
            if (truncated) {
              doc["note"] = "Only the first " + std::to_string(kLogEvents) +
                            " of " + std::to_string(r->saga.last_seq) +
                            " events are shown. Page through the rest with the "
                            "get_saga_log tool, from_seq " +
                            std::to_string(kLogEvents + 1) + " onwards.";
            }
            done(Contents(uri, doc));
          });
    case ResourceUri::Kind::kWorkflow:
      return QueryStore<DefinitionRecord>(
          *engine_,
          [name = parsed->name, version = parsed->version](Store& s) {
            return s.GetDefinition(name, version);
          },
          [uri, done](Result<DefinitionRecord> r) {
            if (!r.ok()) return done(r.status());
            done(Contents(uri, DefinitionForDisplay(r->definition)));
          });
  }
}

void McpSession::Subscribe(const json& id, const std::string& uri) {
  auto parsed = ParseUri(uri);
  if (!parsed.ok()) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.uri: " + parsed.status().message());
  }
  if (parsed->kind == ResourceUri::Kind::kWorkflow) {
    // Definitions are immutable: the subscription never fires, but it must
    // name one that exists.
    if (mcp::FindWorkflow(*engine_, parsed->name, parsed->version)) {
      return Reply(id, json::object());
    }
    return ReplyErrorData(id, kResourceNotFound, "Resource not found",
                          {{"uri", uri}});
  }
  const std::string saga_id = parsed->saga_id;
  if (auto it = followers_.find(saga_id); it != followers_.end()) {
    SagaFollower& f = it->second;
    if (f.subscribed) {
      f.uris.insert(uri);
      return Reply(id, json::object());
    }
    if (!f.subscribing.empty()) {  // the saga is being looked up
      f.subscribing.emplace_back(id, uri);
      return;
    }
  }
  if (Status may = MayFollow(saga_id); !may.ok()) {
    return ReplyErrorData(id, jsonrpc::kInvalidRequest, may.message(),
                          {{"code", mcp::ErrorCode(may)}});
  }
  // Follow first, then look the saga up: no change can slip in between.
  FollowerOf(saga_id).subscribing.emplace_back(id, uri);
  std::weak_ptr<McpSession> weak = weak_from_this();
  engine_->ReadSaga(saga_id, [weak, saga_id](Result<SagaRecord> r) {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    auto it = self->followers_.find(saga_id);
    if (it == self->followers_.end()) return;
    SagaFollower& f = it->second;
    const auto waiting = std::move(f.subscribing);
    f.subscribing.clear();
    if (r.ok()) {
      f.subscribed = true;
      for (const auto& [req, u] : waiting) f.uris.insert(u);
      for (const auto& [req, u] : waiting) self->Reply(req, json::object());
      return;
    }
    self->DropIfIdle(saga_id);
    for (const auto& [req, u] : waiting) {
      if (r.status().IsNotFound()) {
        self->ReplyErrorData(req, kResourceNotFound, "Resource not found",
                             {{"uri", u}});
      } else {
        self->ReplyError(req, jsonrpc::kInternalError,
                         "subscribing to " + u + ": " + r.status().ToString());
      }
    }
  });
}

void McpSession::Unsubscribe(const json& id, const std::string& uri) {
  auto parsed = ParseUri(uri);
  if (!parsed.ok()) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.uri: " + parsed.status().message());
  }
  if (parsed->kind != ResourceUri::Kind::kWorkflow) {
    auto it = followers_.find(parsed->saga_id);
    if (it != followers_.end() && it->second.subscribed) {
      it->second.uris.erase(uri);
      if (it->second.uris.empty()) {
        it->second.subscribed = false;
        DropIfIdle(parsed->saga_id);
      }
    }
  }
  // Unsubscribing from what was not subscribed is not an error.
  Reply(id, json::object());
}

}  // namespace cde
