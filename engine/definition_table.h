// Internal to definition validation: the definition language as one table
// of shapes. The validator (definition.cc) checks a document against it,
// and DefinitionJsonSchema renders it as JSON Schema for clients
// (register_workflow's inputSchema), so the two cannot drift. What JSON
// Schema cannot say (duplicate step names, template references, an
// example that the input schema refuses, ...) is a Hook: the walker hands
// such a node to the validator, which checks its structure through the
// walker again and then adds its own rules. Not an engine API.
#ifndef CDE_ENGINE_DEFINITION_TABLE_H_
#define CDE_ENGINE_DEFINITION_TABLE_H_

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/definition_checks.h"

namespace re2 {
class RE2;
}

namespace cde::definition_internal {

// Nodes the validator checks beyond their shape.
enum class Hook {
  kNone,
  kInputSchema,  // the schema subset itself (input_schema.h)
  kExamples,     // each example against input_schema
  kStep,         // a step: its index is the context of what is inside
  kStepName,     // unique within the definition
  kCompensate,   // the context becomes the step's compensation
  kAction,       // built-in or a registered native action
  kParams,       // a built-in action's own params, and templates
  kRetry,        // max_backoff_ms >= initial_backoff_ms
  kBranches,     // a parallel step's branches: names, count, and each
                 // branch's steps (checked as the top-level steps are)
  kMapItems,     // a map step's items: templates that see the steps before
  kMapSteps,     // a map step's steps (checked as the top-level steps are)
  kTolerated,    // a map step's tolerated_failures: a count or "N%"
};

struct Shape;

struct Property {
  std::string key;
  std::shared_ptr<const Shape> shape;
  bool required = false;
};

struct Shape {
  enum class Type { kAny, kString, kInteger, kNumber, kObject, kArray, kMap };
  Type type = Type::kAny;
  std::string description;
  Hook hook = Hook::kNone;
  // A string that is exactly one ${...} stands in for a value of any type,
  // known only when the step runs: the type and bounds below let it pass.
  bool template_ok = false;
  // The message for a value of another type, when "must be a <type>" says
  // too little ("must be a non-empty array of strings").
  std::string type_message;

  // kInteger: [min, max]. kNumber: [min_number, max_number].
  uint64_t min = 0;
  uint64_t max = std::numeric_limits<uint64_t>::max();
  double min_number = -std::numeric_limits<double>::infinity();
  double max_number = std::numeric_limits<double>::infinity();

  // kString: one of `one_of` (any type that is not one is refused with
  // `rule`), at least min_length characters ("must not be empty"), and a
  // match of `pattern` (RE2 and ECMA-262 alike, searched as JSON Schema
  // does) else `rule`.
  std::vector<std::string> one_of;
  size_t min_length = 0;
  std::string pattern;
  std::shared_ptr<const re2::RE2> compiled;
  std::string rule;

  // kArray: its items, and how many, with the messages for too few and too
  // many.
  std::shared_ptr<const Shape> items;
  size_t min_items = 0;
  size_t max_items = std::numeric_limits<size_t>::max();
  std::string too_few, too_many;

  // kObject: its properties, checked in this order. Closed: any other key
  // is refused. An open object with no properties takes anything.
  std::vector<Property> properties;
  bool closed = true;
  // An action spec (a step, a compensation): its params' shape depends on
  // its built-in action, from ActionParamsShape.
  bool action_spec = false;

  // kObject: an object that has the key of one of `variants` is checked
  // against its shape instead (a parallel or map step instead of an action
  // step).
  std::vector<std::pair<std::string, std::shared_ptr<const Shape>>> variants;

  // kMap: an object whose values are strings and whose keys match
  // key_pattern, else "<key_rule> '<key>'".
  std::string key_pattern;
  std::shared_ptr<const re2::RE2> key_compiled;
  std::string key_rule;
};

// The root of a definition document.
const Shape& DefinitionShape();
// A list of steps: the definition's `steps`, and each branch of a parallel
// step.
const Shape& StepsShape();
// What a branch may be named: no dots, which separate a path's parts.
extern const char kBranchNamePattern[];
// A tolerated_failures percentage: "0%" to "100%".
extern const char kPercentPattern[];

// The params of each built-in action, by its name.
const std::map<std::string, std::shared_ptr<const Shape>>& ActionParamsShapes();

// The built-in actions, in the order the documentation lists them.
const std::vector<std::string>& BuiltinActionNames();

// The nodes that carry a hook hand them to the validator.
class HookHandler {
 public:
  virtual ~HookHandler() = default;
  // `value` is null when the key is absent (after "is required", if it
  // is); `index` is an array item's index, else 0.
  virtual void OnHook(const Shape& shape, const nlohmann::json* value,
                      const std::string& path, size_t index) = 0;
};

// Reports at `path` each way `value` breaks `shape`, descending into
// objects and arrays. A nested node with a hook goes to `handler` instead;
// `shape`'s own hook is not called (so that a handler can check a node's
// structure through here). True if `value` has the shape's type.
bool CheckShape(const Shape& shape, const nlohmann::json& value,
                const std::string& path, Problems* problems,
                HookHandler* handler);

// The shape as JSON Schema (draft-07 keywords, which 2020-12 keeps).
nlohmann::json ShapeSchema(const Shape& shape, const ActionNames& native);

}  // namespace cde::definition_internal

#endif  // CDE_ENGINE_DEFINITION_TABLE_H_
