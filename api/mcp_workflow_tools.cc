// Each registered workflow as a tool of its own, run_<workflow>: what an
// agent in a client that shows its model only tools can find and call
// without knowing the engine. Its inputSchema is the workflow's
// input_schema, its arguments are the saga's input, and its result is
// start_workflow's with a wait.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "api/mcp_session.h"
#include "api/mcp_util.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr size_t kMaxToolName = 128;  // MCP: tool names of 1 to 128 chars
constexpr char kPrefix[] = "run_";
// A run_ tool's call waits this long for its saga to end, as
// start_workflow with wait_ms does; a longer saga answers timed_out, and
// get_saga follows it.
constexpr uint64_t kRunWaitMs = 60000;

// FNV-1a: a stable, short tag for a name cut to fit.
uint32_t Fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// The tool's inputSchema: the workflow's input_schema (MCP wants an object
// schema there), or any object when it has none.
json InputSchemaOf(const WorkflowDefinition& def) {
  if (!def.input_schema.is_object()) {
    return {{"type", "object"}, {"properties", json::object()}};
  }
  json schema = def.input_schema;
  if (!schema.contains("type")) schema["type"] = "object";
  if (!schema.contains("properties")) schema["properties"] = json::object();
  return schema;
}

}  // namespace

std::string WorkflowToolName(const std::string& workflow) {
  std::string name = kPrefix + workflow;
  if (name.size() <= kMaxToolName) return name;
  // Workflow names allow up to 128 characters, as tool names do: a long
  // one is cut and tagged with a hash of the whole, so that two names
  // alike in their first 115 characters still get two tools.
  char tag[10];
  std::snprintf(tag, sizeof tag, "_%08x", Fnv1a(workflow));
  return name.substr(0, kMaxToolName - 9) + tag;
}

json McpSession::ListTools() const {
  json tools = Tools();
  json start_output;
  for (json& t : tools) {
    if (t["name"] == "start_workflow") start_output = t["outputSchema"];
    // The whole definition language, so that an agent need not guess it.
    if (t["name"] == "register_workflow") {
      t["inputSchema"]["properties"]["definition"] =
          engine_->DefinitionSchema();
    }
  }
  if (!options_.workflow_tools) return tools;
  for (const auto& def : mcp::LatestWorkflows(*engine_)) {
    const std::string name = WorkflowToolName(def->name);
    std::string description =
        def->description.empty() ? "" : def->description + "\n\n";
    description +=
        "Runs the workflow '" + def->name + "' (version " +
        std::to_string(def->version) +
        ") as a durable saga; the arguments are its input. Waits up to " +
        std::to_string(kRunWaitMs / 1000) +
        " s for the saga to end and returns it (each step's output, and "
        "`next`: what to do if it failed); timed_out: true if it is still "
        "going (follow it with get_saga). Each call starts a new saga; "
        "_meta.idempotency_key makes a repeated call return the first one.";
    tools.push_back({{"name", name},
                     {"title", "Run " + def->name},
                     {"description", std::move(description)},
                     {"inputSchema", InputSchemaOf(*def)},
                     {"outputSchema", start_output},
                     {"annotations",
                      {{"readOnlyHint", false},
                       {"destructiveHint", false},
                       {"idempotentHint", false},
                       {"openWorldHint", true}}}});
  }
  return tools;
}

std::string McpSession::WorkflowOfTool(const std::string& tool) const {
  if (!options_.workflow_tools || !tool.starts_with(kPrefix)) return "";
  // Nearly always the name after the prefix; only a cut one needs a scan.
  const std::string named = tool.substr(std::strlen(kPrefix));
  if (engine_->FindWorkflow(named, std::nullopt) != nullptr &&
      WorkflowToolName(named) == tool) {
    return named;
  }
  for (const auto& def : mcp::LatestWorkflows(*engine_)) {
    if (WorkflowToolName(def->name) == tool) return def->name;
  }
  return "";
}

void McpSession::RunWorkflowTool(const json& id, const std::string& workflow,
                                 const json& args, const json& meta,
                                 const McpMessageContext& context) {
  json start = {
      {"workflow", workflow}, {"input", args}, {"wait_ms", kRunWaitMs}};
  if (meta.is_object()) {
    if (auto key = meta.find("idempotency_key"); key != meta.end()) {
      start["idempotency_key"] = *key;
    }
  }
  StartWorkflow(id, start, meta, context);
}

void McpSession::AnnounceNewWorkflows() {
  if (!options_.workflow_tools) return;
  std::weak_ptr<McpSession> weak = weak_from_this();
  const uint64_t w = engine_->WatchDefinitions([weak](const DefinitionRecord&) {
    auto self = weak.lock();
    // A new workflow or version is a new or changed run_ tool.
    if (self && !self->closed_) {
      self->Notify("notifications/tools/list_changed", json::object());
    }
  });
  watches_.insert(w);
}

}  // namespace cde
