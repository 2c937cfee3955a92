// Helpers shared by the McpSession units: argument parsing with errors that
// name the field, and the JSON shapes of engine records.
#ifndef CDE_API_MCP_UTIL_H_
#define CDE_API_MCP_UTIL_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

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

// A saga snapshot as tools and resources show it.
nlohmann::json SagaJson(const SagaRecord& r);
// One log event.
nlohmann::json LogJson(const LogRecord& r);

}  // namespace cde::mcp

#endif  // CDE_API_MCP_UTIL_H_
