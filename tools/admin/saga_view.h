// cde-admin: what a saga snapshot means to an operator. Step names, actions
// and retry limits come from the saga's workflow definition (the snapshot
// keeps steps by index); the typed saga from engine/saga.h.
#ifndef CDE_TOOLS_ADMIN_SAGA_VIEW_H_
#define CDE_TOOLS_ADMIN_SAGA_VIEW_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/saga.h"
#include "storage/store.h"

namespace cde::admin {

struct StepInfo {
  std::string name;
  std::string action;
  uint32_t max_attempts = 3;
  std::string compensate_action;  // "" when the step has no compensation
  uint32_t compensate_max_attempts = 3;
};

// Workflow definitions read once per workflow@version.
class Definitions {
 public:
  explicit Definitions(Store& store) : store_(store) {}
  // The steps of workflow@version; nullptr if that definition is missing
  // or unreadable.
  const std::vector<StepInfo>* Steps(const std::string& workflow,
                                     uint32_t version);
  // The step's name, or "step[i]" when the definition does not say.
  std::string StepName(const std::string& workflow, uint32_t version,
                       int index);

 private:
  Store& store_;
  std::map<std::pair<std::string, uint32_t>,
           std::optional<std::vector<StepInfo>>>
      cache_;
};

// The steps of a definition document (the JSON as registered).
std::vector<StepInfo> StepsOf(const nlohmann::json& definition);

// Where a saga is: the step it waits on, or for a parked saga the step (or
// compensation) that failed. step = -1 when it is at no step (finished,
// queued).
struct Position {
  int step = -1;
  bool compensation = false;
  uint32_t attempts = 0;  // attempts of that step (or compensation)
};
Position CurrentStep(const Saga& saga);
uint32_t TotalAttempts(const Saga& saga);

// The row of `sagas list` (and the head of `sagas show`) as JSON: id,
// workflow, version, state, current_step, total_attempts, times, wait.
nlohmann::json SagaSummary(const SagaRecord& record, const Result<Saga>& saga,
                           Definitions& defs, int64_t now_ms);

// What an active saga waits for, in words ("timer of sleep step nap due
// 2026-...Z (in 59m)"); "" when it waits for nothing.
std::string DescribeWait(const Saga& saga, Definitions& defs, int64_t now_ms);
nlohmann::json WaitJson(const Saga& saga, Definitions& defs);

}  // namespace cde::admin

#endif  // CDE_TOOLS_ADMIN_SAGA_VIEW_H_
