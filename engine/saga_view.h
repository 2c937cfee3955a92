// SagaView: the read model of one saga, the one that every surface renders
// (MCP get_saga, saga:// resources, task status and list_sagas; cde-admin
// sagas list and show). It names each step by its path and says what the
// saga waits for, so that no surface reaches into Saga's progress fields,
// which change shape as the saga model grows branches and maps.
//
// A view refers into the saga and the definition it was made from; both
// must outlive it.
#ifndef CDE_ENGINE_SAGA_VIEW_H_
#define CDE_ENGINE_SAGA_VIEW_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/definition.h"
#include "engine/saga.h"

namespace cde {

// A branch of a parallel step: its steps, as indices into steps().
struct BranchView {
  std::string name;
  std::vector<size_t> steps;
};

struct StepView {
  // Where the step sits in the definition (StepSpec::path: "book",
  // "book.flight.reserve"); "step[2]" when the definition is not at hand.
  std::string path;
  const StepSpec* spec = nullptr;  // nullptr when the definition is not
  const StepState* state = nullptr;
  // A parallel step's branches; empty for an action step.
  std::vector<BranchView> branches;
  int depth = 0;  // 0 at the top level, 1 in a top-level parallel step, ...
  // A step inside a map step: it runs once per item, and its state lives in
  // the items, not here (`state` stays pending).
  bool in_map = false;
  bool parallel() const {
    return spec != nullptr && spec->kind == StepKind::kParallel;
  }
  // A map step: its progress over its items is state->map.
  bool map() const { return spec != nullptr && spec->kind == StepKind::kMap; }
};

// One thing the saga waits for.
struct WaitView {
  Wait::Kind kind = Wait::Kind::kNothing;
  // The step it waits on; "" for the saga's own waits (a free slot, its
  // automatic replay).
  std::string path;
  bool compensation = false;  // the step's compensation, not the step
  uint32_t attempt = 0;       // the attempt in flight, or the one that failed
  int64_t due_ms = 0;         // backoff, sleep, redrive: when it falls due
  bool stopped = false;       // an attempt stopped in flight (Wait::stopped)
};

// Where a saga is: the step it waits on or, for a parked saga, the step (or
// compensation) whose failure parked it.
struct Position {
  const StepView* step = nullptr;
  bool compensation = false;
  uint32_t attempts = 0;      // of that step, or of its compensation
  uint32_t max_attempts = 0;  // its retry budget; 0 when not known
};

class SagaView {
 public:
  // `def` may be null (its definition is not at hand): steps are then named
  // by index.
  SagaView(const Saga& saga, const WorkflowDefinition* def);

  // The saga's head (id, workflow, state, times, input, who, failure).
  const Saga& saga() const { return saga_; }
  const WorkflowDefinition* definition() const { return def_; }
  // Every step, nested ones included, parents before their branches' steps
  // (and before the steps inside them, which are in_map).
  const std::vector<StepView>& steps() const { return steps_; }
  // The top-level steps, as indices into steps(): with each StepView's
  // branches, the tree of paths.
  const std::vector<size_t>& top() const { return top_; }
  // What it waits for now; empty when it waits for nothing (it has ended,
  // or is between two transitions).
  const std::vector<WaitView>& waits() const { return waits_; }

  const StepView* Find(std::string_view path) const;
  std::optional<Position> position() const;
  // The step whose failure started compensation (or parked the saga).
  const StepView* failed_step() const;
  // The step whose compensation failed (a saga parked by it), if any.
  const StepView* failed_compensation() const;
  // Attempts of every step and compensation so far.
  uint32_t total_attempts() const;
  // Steps (or compensations) still to finish, for a progress total: steps
  // not yet succeeded while it runs, compensations still due while it
  // compensates; 0 otherwise.
  uint64_t remaining() const;

 private:
  const StepView* AtIndex(int index) const;

  const Saga& saga_;
  const WorkflowDefinition* def_;
  std::vector<StepView> steps_;
  std::vector<size_t> top_;
  std::vector<WaitView> waits_;
};

}  // namespace cde

#endif  // CDE_ENGINE_SAGA_VIEW_H_
