// A DLQ entry as every surface shows it: MCP (`list_dlq`, the
// `operate_dlq` prompt), the server's `POST /admin/dlq/purge` answer, and
// cde-admin's JSON (`dlq list|show|purge`, `sagas show`), which adds its
// own readable times beside these fields.
#ifndef CDE_ENGINE_DLQ_ENTRY_H_
#define CDE_ENGINE_DLQ_ENTRY_H_

#include <nlohmann/json.hpp>

#include "storage/records.h"

namespace cde {

// {saga_id, workflow, version, reason, step, last_error, attempts,
//  parked_ms, replay_count}; `reason` is a DlqReason's name (kinds.h).
nlohmann::json DlqEntryJson(const DlqRecord& entry);
// The inverse, for an answer read back (cde-admin from the server); a
// missing or mistyped field is left at its default.
DlqRecord DlqEntryFromJson(const nlohmann::json& j);

}  // namespace cde

#endif  // CDE_ENGINE_DLQ_ENTRY_H_
