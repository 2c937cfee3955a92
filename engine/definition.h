// Workflow definitions: the JSON documents users register, parsed into a
// typed model and validated before anything is stored.
//
// A definition (docs/workflows.md is the reference):
//
//   {
//     "name": "trip-booking",            // [A-Za-z0-9][A-Za-z0-9._-]{0,127}
//     "version": 1,                      // integer >= 1
//     "description": "optional text",
//     "input_schema": { ...JSON Schema subset, see input_schema.h... },
//     "on_failure": "compensate",        // or "park"; default "compensate"
//     "max_concurrency": 50,             // optional: max running sagas
//     "dlq": {"auto_replay": {"max_replays": 3, "after_ms": 60000}},
//     "steps": [                  // 1..limits.definition_steps (256), nested
//                                  // steps included
//       {
//         "name": "reserve-flight",      // same pattern as workflow names;
//                                        // unique within the definition
//         "action": "http",              // built-in or registered native
//         "params": { ... },             // may use templates (templating.h)
//         "retry": { "max_attempts": 5, "initial_backoff_ms": 200,
//                    "multiplier": 2.0, "max_backoff_ms": 10000,
//                    "jitter": 0.2, "non_retryable": ["http_4xx"] },
//         "timeout_ms": 5000,
//         "circuit_breaker": "flights-api",
//         "rate_limit": "flights-api",
//         "compensate": { "action": "http", "params": { ... },
//                         "retry": { ... }, "timeout_ms": 5000 }
//       },
//       { "name": "book",                // a parallel step: its branches run
//         "parallel": { "branches": {    // side by side, each its steps in
//           "flight": [ {...steps} ],    // order; names are unique across
//           "hotel":  [ {...steps} ] } } // the whole definition
//       },
//       { "name": "charge-all",          // a map step: its steps run once
//         "map": {                       // per item, items side by side
//           "items": "${input.orders}",  // an array, or a template giving one
//           "max_concurrency": 10,       // items under way at once
//           "tolerated_failures": "10%", // or a count; default 0
//           "steps": [ {...steps} ] } }  // ${item}, ${index} inside
//       }
//     ]
//   }
//
// Validation collects every problem, each with the JSON path it is about
// ("steps[2].retry.max_attempts: must be >= 1"); unknown keys are errors.
#ifndef CDE_ENGINE_DEFINITION_H_
#define CDE_ENGINE_DEFINITION_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storage/records.h"
#include "storage/status.h"

namespace cde {

struct RetryPolicy {
  uint32_t max_attempts = 3;          // >= 1; 1 means no retry
  uint64_t initial_backoff_ms = 100;  // delay before the 2nd attempt
  double multiplier = 2.0;            // >= 1.0
  uint64_t max_backoff_ms = 30000;    // >= initial_backoff_ms
  double jitter = 0.2;                // 0..1: +-fraction of each delay
  // Error kinds that fail the step at once, without retry. Actions report a
  // kind with each failure: "http_404" (any status as http_NNN),
  // "connection", "timeout", "exit_code:3", "failed" (the `fail` action), or
  // a native action's own. An entry matches a kind exactly, or is a class:
  // "http_4xx" matches http_400..http_499 except http_408 and http_429;
  // "http_5xx" matches http_500..http_599. Default: {"http_4xx"}.
  std::vector<std::string> non_retryable = {"http_4xx"};

  friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

// The longest duration a definition may name, in ms (100 years): sleeps,
// backoffs and timeouts. Due times are the clock plus a duration in int64
// ms, which must not overflow.
inline constexpr uint64_t kMaxDurationMs = 3'155'760'000'000;

// The most steps a definition can have, whatever limits.definition_steps
// allows.
inline constexpr size_t kMaxDefinitionSteps = 4096;
// The most branches a parallel step can have, whatever limits.branches
// allows, and how deep parallel steps nest (a top-level parallel step is at
// depth 1).
inline constexpr size_t kMaxBranches = 256;
inline constexpr size_t kMaxNestingDepth = 8;
// A map step's items under way at once: its default and its most. The most
// items a map can have, whatever limits.map_items allows.
inline constexpr uint32_t kDefaultMapConcurrency = 10;
inline constexpr uint32_t kMaxMapConcurrency = 1024;
inline constexpr uint32_t kMaxMapItems = 1'000'000;

struct ActionSpec {
  std::string action;  // "noop", "echo", "fail", "sleep", "exec", "http", ...
  nlohmann::json params = nlohmann::json::object();
  // HasTemplateSyntax(params), as the parser found it: without, each
  // attempt sends the params as they are, with no rendering.
  bool templated = true;
  RetryPolicy retry;
  std::optional<uint64_t> timeout_ms;  // per attempt; nullopt: no timeout

  // `templated` follows from the params: not compared.
  friend bool operator==(const ActionSpec& a, const ActionSpec& b) {
    return a.action == b.action && a.params == b.params && a.retry == b.retry &&
           a.timeout_ms == b.timeout_ms;
  }
};

enum class StepKind {
  kAction,    // runs an action (and may compensate it)
  kParallel,  // runs its branches side by side; its output is theirs
  kMap,       // runs its steps once per item, items side by side; its
              // output is the items' outputs, in item order
};

// A map step's own settings.
struct MapSpec {
  // The items: an array, or a template rendered when the map starts (as
  // params are) that must give one.
  nlohmann::json items;
  uint32_t max_concurrency = kDefaultMapConcurrency;
  // How many items may fail for good before the map fails: a count, or a
  // percentage of the items (tolerated while failed * 100 <= percent *
  // items).
  uint32_t tolerated_count = 0;
  std::optional<uint32_t> tolerated_percent;
  // An item's top-level steps, as indices into WorkflowDefinition::steps.
  // Every step inside the map (nested ones too) follows the map step in
  // `steps`: map + 1 .. map + size.
  std::vector<int> steps;
  int size = 0;
  friend bool operator==(const MapSpec&, const MapSpec&) = default;
};

// One branch of a parallel step: its steps, in order, as indices into
// WorkflowDefinition::steps.
struct Branch {
  std::string name;
  std::vector<int> steps;
  friend bool operator==(const Branch&, const Branch&) = default;
};

struct StepSpec {
  std::string name;
  StepKind kind = StepKind::kAction;
  ActionSpec run;  // kAction: action, params, retry, timeout_ms
  std::optional<ActionSpec> compensate;  // nullopt: nothing to undo
  std::string circuit_breaker;           // "" = default key (see engine)
  std::string rate_limit;                // "" = not rate limited
  // kParallel: its branches, in name order.
  std::vector<Branch> branches;
  // kMap: its items and steps.
  MapSpec map;

  // Where it sits. `path` names it in sagas, logs, timers and idempotency
  // keys: its name at the top level, "<parallel's path>.<branch>.<name>"
  // inside a branch ("book.flight.reserve"), "<map's path>.<name>" inside
  // a map step. `where` is its place in the document, for messages
  // ("steps[1].parallel.branches.flight[0]"). Inside a map step the path is
  // a template: "charge-all.charge" runs as "charge-all[3].charge" for item
  // 3 (see StepInstance).
  std::string path;
  std::string where;
  int parent = -1;  // the parallel or map step it is in; -1 at the top
  int in_map = -1;  // the map step whose items it runs in; -1 if none

  friend bool operator==(const StepSpec&, const StepSpec&) = default;
};

enum class OnFailure { kCompensate, kPark };

// dlq.auto_replay: a parked saga is replayed by itself after_ms after it
// parked, up to max_replays times in its life (counting manual replays).
struct AutoReplay {
  uint32_t max_replays = 1;  // 1..1000
  int64_t after_ms = 0;      // 0..30 days
  friend bool operator==(const AutoReplay&, const AutoReplay&) = default;
};

struct WorkflowDefinition {
  std::string name;
  uint32_t version = 0;
  std::string description;
  nlohmann::json input_schema;  // null when the definition has none
  nlohmann::json examples;      // example inputs (an array), or null
  OnFailure on_failure = OnFailure::kCompensate;
  std::optional<uint32_t> max_concurrency;
  std::optional<AutoReplay> auto_replay;
  // Every step, nested ones included, parents before their branches' steps
  // (pre-order): a saga's StepState list has the same order. Without
  // parallel steps, the top-level steps in order.
  std::vector<StepSpec> steps;
  // The top-level steps, in order, as indices into `steps`.
  std::vector<int> sequence;
  // Who registered it (not part of the document): decides which actions
  // its steps may use (engine/action_policy.h).
  DefinitionOrigin origin = DefinitionOrigin::kOperator;
  std::string registered_by;  // DefinitionRecord::registered_by

  // The index of the step named `name` (names are unique across the
  // definition), or -1.
  int StepIndex(const std::string& name) const;
  // The index of the step at `path` (a template path inside a map step),
  // or -1. A lookup in an index built once.
  int StepAtPath(std::string_view path) const;
  // How deep the step sits: 0 at the top level, 1 in a top-level parallel
  // step's branch, ...
  int Depth(int step) const;
  // Builds the index StepAtPath reads; ParseDefinition calls it. Without
  // it (a definition built by hand) StepAtPath scans the steps.
  void IndexPaths();

 private:
  std::map<std::string, int, std::less<>> by_path_;
};

// A step as it runs: the step, and for a step inside a map step the item it
// runs for (-1 outside map steps); inside a map step that is itself inside
// another map step's steps, `outer` holds the indices of the enclosing
// maps' items, outermost first.
struct StepInstance {
  int step = -1;
  int64_t item = -1;
  std::vector<uint32_t> outer;
  friend bool operator==(const StepInstance&, const StepInstance&) = default;
};
// Its path: the step's own, or inside map steps its path with each item's
// index after its map's ("charge-all[3].charge", "orders[2].lines[0].pick").
std::string InstancePath(const WorkflowDefinition& def, const StepInstance& at);
// The instance at `path`; step -1 if no step of `def` has that path. A path
// without indices names the step in the definition (item -1); otherwise it
// has one index for each map step that encloses the step.
StepInstance InstanceAt(const WorkflowDefinition& def, std::string_view path);
// The map steps that enclose `step`, outermost first.
std::vector<int> EnclosingMaps(const WorkflowDefinition& def, int step);

struct DefinitionError {
  std::string path;     // "steps[2].retry.max_attempts", "" for the root
  std::string message;  // "must be >= 1"

  std::string ToString() const;  // "steps[2].retry.max_attempts: must be >= 1"
  friend bool operator==(const DefinitionError&,
                         const DefinitionError&) = default;
};

// Names of the native actions an embedding program registered; built-in
// actions are always known.
using ActionNames = std::set<std::string>;

// Every problem with `doc` as a definition, in document order; empty if
// `doc` is valid. Checks shape and types, unknown keys, names, ranges,
// duplicate step names (across the whole definition) and paths, branch
// counts and nesting depth, action names (built-in or in `native`), the params
// of built-in actions, the input schema itself, and templates (syntax, and
// that ${steps.X...} names a step that has finished before this one starts:
// an earlier step of its own list or of an enclosing one, or a step inside
// such a parallel step; for a compensation also the step itself).
std::vector<DefinitionError> ValidateDefinition(const nlohmann::json& doc,
                                                const ActionNames& native);

// The parsed definition, or InvalidArgument whose message lists every
// problem ("invalid workflow definition: steps[0].name: ...; ...").
Result<WorkflowDefinition> ParseDefinition(const nlohmann::json& doc,
                                           const ActionNames& native);

// True if the non_retryable entry `pattern` matches the error kind `kind`.
bool ErrorKindMatches(const std::string& pattern, const std::string& kind);

// True for the built-in action names.
bool IsBuiltinAction(const std::string& action);

// The definition language as JSON Schema (draft-07 keywords), for clients
// that build definitions: made from the table that ValidateDefinition
// checks against, with `native` among the actions. What it cannot say
// (unique step names, template references, an input_schema's nested
// keywords, examples that input_schema refuses, retry's max_backoff_ms >=
// initial_backoff_ms) ValidateDefinition still checks.
nlohmann::json DefinitionJsonSchema(const ActionNames& native);

namespace definition_internal {
template <typename Json, typename Visit>
void VisitStepDocuments(Json& list, Visit& visit) {
  if (!list.is_array()) return;
  for (auto& step : list) {
    if (!step.is_object()) continue;
    visit(step);
    if (auto map = step.find("map"); map != step.end() && map->is_object()) {
      if (auto steps = map->find("steps"); steps != map->end()) {
        VisitStepDocuments(*steps, visit);
      }
    }
    auto parallel = step.find("parallel");
    if (parallel == step.end() || !parallel->is_object()) continue;
    auto branches = parallel->find("branches");
    if (branches == parallel->end() || !branches->is_object()) continue;
    for (auto& branch : branches->items()) {
      VisitStepDocuments(branch.value(), visit);
    }
  }
}
}  // namespace definition_internal

// Calls visit(step) for each step object of a definition document (`Json`
// is json or const json), nested steps included, a parallel or map step
// before the steps inside it. What is not an object is skipped: stored
// documents were validated, and the others are checked elsewhere.
template <typename Json, typename Visit>
void ForEachStepDocument(Json& doc, Visit visit) {
  if (!doc.is_object()) return;
  auto steps = doc.find("steps");
  if (steps != doc.end()) {
    definition_internal::VisitStepDocuments(*steps, visit);
  }
}

}  // namespace cde

#endif  // CDE_ENGINE_DEFINITION_H_
