#include "api/mcp_util.h"

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

json SagaJson(const SagaRecord& r) {
  json out = {{"saga_id", r.id},
              {"workflow", r.workflow},
              {"version", r.version},
              {"state", SagaStateName(r.state)},
              {"created_ms", r.created_ms},
              {"updated_ms", r.updated_ms},
              {"last_seq", r.last_seq}};
  for (const char* key : {"input", "steps", "wait", "failure"}) {
    if (r.body.contains(key)) out[key] = r.body[key];
  }
  if (!r.idempotency_key.empty()) out["idempotency_key"] = r.idempotency_key;
  return out;
}

json LogJson(const LogRecord& r) {
  return {{"seq", r.seq},
          {"time_ms", r.time_ms},
          {"type", r.type},
          {"data", r.data}};
}

}  // namespace cde::mcp
