// Brings a store written by an older build to the current format, at open.
// Private to engine/: the store keeps the format version and the upgrade
// marker (storage/keys.h); what changed inside the snapshots between
// versions is the engine's to know.
#ifndef CDE_ENGINE_STORE_UPGRADE_H_
#define CDE_ENGINE_STORE_UPGRADE_H_

#include <cstdint>

#include "storage/store.h"

namespace cde {

struct UpgradeReport {
  uint32_t from = 0;                // the version found
  uint64_t rewritten = 0;           // snapshots written in the current format
  uint64_t left_as_is = 0;          // snapshots that do not decode (poison)
  uint64_t retired_index_rows = 0;  // rows of idx_state and idx_workflow
};

// Upgrades `store` if store.format_version() < kFormatVersion. Safe to run
// again after a crash at any point: the marker written first makes older
// builds refuse the store, and this resumes. Blocks on the store: call it
// before the loop runs.
//
// 1 -> 2: a step's compensation got a status of its own. Every snapshot is
// rewritten in the new words (FromRecord reads both), and a step that a
// finished saga left `running` (a sleep cut off by a cancel) becomes
// `cancelled`.
// 2 -> 3: a saga holds a list of waits, each naming its step by path, not
// one wait naming its step by index (the saga's definition names it); a
// step's timer row is named "<kind>:<path>".
// 6 -> 7: idx_workflow_state is the sagas' one index; the rows of idx_state
// and idx_workflow, which it answers too, are deleted.
Result<UpgradeReport> UpgradeStore(Store& store);

}  // namespace cde

#endif  // CDE_ENGINE_STORE_UPGRADE_H_
