// cde-admin: what a saga snapshot means to an operator, rendered from the
// engine's read model (engine/saga_view.h) with the saga's workflow
// definition as stored.
#ifndef CDE_TOOLS_ADMIN_SAGA_VIEW_H_
#define CDE_TOOLS_ADMIN_SAGA_VIEW_H_

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "engine/definition.h"
#include "engine/saga.h"
#include "engine/saga_view.h"
#include "storage/store.h"
#include "tools/admin/output.h"

namespace cde::admin {

// Workflow definitions read once per workflow@version.
class Definitions {
 public:
  explicit Definitions(Store& store) : store_(store) {}
  // workflow@version as stored; nullptr if that definition is missing or
  // unreadable (its steps are then named by index).
  const WorkflowDefinition* Find(const std::string& workflow, uint32_t version);

 private:
  Store& store_;
  std::map<std::pair<std::string, uint32_t>,
           std::shared_ptr<const WorkflowDefinition>>
      cache_;
};

// The colour a step's (or an item's) status is shown in.
Colour StepColour(StepStatus s);

// The row of `sagas list` (and the head of `sagas show`) as JSON: id,
// workflow, version, state, current_step, total_attempts, times, waits.
nlohmann::json SagaSummary(const SagaRecord& record, const Result<Saga>& saga,
                           Definitions& defs, int64_t now_ms);

// What a saga waits for, in words ("the timer of sleep step nap, due
// 2026-...Z (in 59m)"; several joined by "; "); "" when it waits for
// nothing.
std::string DescribeWaits(const SagaView& view, int64_t now_ms);
// Its waits as JSON: [{kind, path, compensation, attempt, due_ms, due_at}].
nlohmann::json WaitsJson(const SagaView& view);

}  // namespace cde::admin

#endif  // CDE_TOOLS_ADMIN_SAGA_VIEW_H_
