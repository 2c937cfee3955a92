// Helpers shared by the McpSession units: argument parsing with errors that
// name the field, and the JSON shapes of engine records.
#ifndef CDE_API_MCP_UTIL_H_
#define CDE_API_MCP_UTIL_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "storage/records.h"
#include "storage/status.h"

namespace cde::mcp {

// The stable tool error code of a Status (docs/mcp.md).
std::string ErrorCode(const Status& s);

// A string argument `args[name]`; InvalidArgument naming "arguments.<name>"
// when it is missing (and required) or not a string. Missing and optional:
// "".
Result<std::string> StringArg(const nlohmann::json& args, const char* name,
                              bool required = true);
// An integer argument in [min, max]; nullopt when absent.
Result<std::optional<uint64_t>> IntArg(const nlohmann::json& args,
                                       const char* name, uint64_t min,
                                       uint64_t max);
// A boolean argument; `fallback` when absent.
Result<bool> BoolArg(const nlohmann::json& args, const char* name,
                     bool fallback);

// The longest correlation id a caller may give.
inline constexpr size_t kMaxCorrelationIdLength = 128;

// The arguments of start_workflow (workflow, version?, input?,
// idempotency_key?) as a StartRequest; InvalidArgument naming the field.
// Shared by the plain and the task-augmented call. The correlation id and
// traceparent come from `meta` (params._meta: correlation_id, traceparent),
// else from `header_correlation_id` / `header_traceparent` (the HTTP
// headers X-Correlation-ID and traceparent; "" = none). A correlation id
// must be a string of at most 128 printable ASCII characters
// (InvalidArgument naming `_meta.correlation_id` or the header; "" counts
// as none); a traceparent that is not a valid W3C one is ignored, and the
// saga starts a fresh trace. `started_by` names the caller (a token's name,
// "local" over stdio).
Result<StartRequest> StartArgs(const nlohmann::json& args,
                               const nlohmann::json& meta = nullptr,
                               std::string_view header_correlation_id = "",
                               std::string_view header_traceparent = "",
                               std::string_view started_by = "");

// `ms` since the epoch as ISO 8601 in UTC: "2025-11-25T10:30:00.123Z".
std::string IsoTime(int64_t ms);

// Opaque pagination cursors (base64url of `position`); nullopt when
// `cursor` is not one this server made.
std::string EncodeCursor(const std::string& position);
std::optional<std::string> DecodeCursor(const std::string& cursor);

// The MCP logging levels (RFC 5424 severities), least severe first.
inline constexpr const char* kLogLevels[] = {"debug",   "info",     "notice",
                                             "warning", "error",    "critical",
                                             "alert",   "emergency"};
// The index of `level` in kLogLevels, or -1 if it is not one.
int LogLevelIndex(std::string_view level);
// Every saga state name, comma-separated, for error messages.
std::string SagaStateNames();

// The registered definition `name` version `version`, or nullptr.
std::shared_ptr<const WorkflowDefinition> FindWorkflow(const Engine& engine,
                                                       const std::string& name,
                                                       uint32_t version);

// The latest version of every registered workflow, by name.
std::vector<std::shared_ptr<const WorkflowDefinition>> LatestWorkflows(
    const Engine& engine);

// A saga snapshot as tools and resources show it, with `next`: what an
// agent can do about it now, naming the tools (replay_saga for a parked
// one). Read through the engine's typed saga (FromRecord), never from the
// stored body; a snapshot that does not decode shows its head and `error`.
// `def`, its definition (null if unknown), names the steps.
nlohmann::json SagaJson(SagaRecord r, const WorkflowDefinition* def);
// The same, with the definition looked up in `engine`.
nlohmann::json SagaJson(const Engine& engine, SagaRecord r);
// One log event.
nlohmann::json LogJson(const LogRecord& r);
// The engine's circuit breakers: [{key, state, consecutive_failures,
// opened_total}], for engine_stats and /health.
nlohmann::json BreakersJson(const std::vector<CircuitBreakers::View>& views);

// The JSON-RPC reply to request `id` carrying a tool's successful result:
// `structured` as structuredContent and, serialized, as its text content.
// It is serialized once for both (a saga can be large): the same bytes as
// jsonrpc::EncodeResult(id, {content: [{type: text, text:
// structured.dump()}], structuredContent: structured, isError: false}).
std::string EncodeToolResult(const nlohmann::json& id,
                             const nlohmann::json& structured);
// The same with `structured` already serialized, compact, as dump() writes
// it.
std::string EncodeToolResultText(const nlohmann::json& id,
                                 std::string_view structured);
// The text of SagaJson(ToRecord(saga), def), written straight from the
// saga in memory: the answer to each start_workflow that waits, and what
// SagaJson parses (so every surface renders the one typed saga).
std::string SagaJsonText(const Saga& saga, const WorkflowDefinition* def);

}  // namespace cde::mcp

#endif  // CDE_API_MCP_UTIL_H_
