#include "engine/dlq_entry.h"

namespace cde {
namespace {

using nlohmann::json;

template <typename T>
T Field(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

}  // namespace

json DlqEntryJson(const DlqRecord& e) {
  return {{"saga_id", e.saga_id},
          {"workflow", e.workflow},
          {"version", e.version},
          {"reason", e.reason},
          {"step", e.step},
          {"last_error", e.last_error},
          {"attempts", e.attempts},
          {"parked_ms", e.parked_ms},
          {"replay_count", e.replay_count}};
}

DlqRecord DlqEntryFromJson(const json& j) {
  DlqRecord d;
  if (!j.is_object()) return d;
  d.saga_id = Field<std::string>(j, "saga_id", "");
  d.workflow = Field<std::string>(j, "workflow", "");
  d.version = Field<uint32_t>(j, "version", 0);
  d.reason = Field<std::string>(j, "reason", "");
  d.step = Field<std::string>(j, "step", "");
  d.last_error = Field<std::string>(j, "last_error", "");
  d.attempts = Field<uint32_t>(j, "attempts", 0);
  d.parked_ms = Field<int64_t>(j, "parked_ms", 0);
  d.replay_count = Field<uint32_t>(j, "replay_count", 0);
  return d;
}

}  // namespace cde
