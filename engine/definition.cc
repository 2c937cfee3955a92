#include "engine/definition.h"

#include <re2/re2.h>

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "engine/definition_checks.h"
#include "engine/definition_table.h"
#include "engine/input_schema.h"
#include "engine/templating.h"

namespace cde {
namespace {

using definition_internal::JoinIndex;
using definition_internal::JoinKey;
using definition_internal::Problems;
using definition_internal::Shape;
using nlohmann::json;

const json* Find(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The source text of a step-output reference, as the user wrote it: the
// reference syntax has exactly one spelling per TemplateRef.
std::string StepRefText(const TemplateRef& ref) {
  std::string text = "${steps." + ref.step + ".output";
  for (const std::string& segment : ref.path) text += "." + segment;
  return text + "}";
}

// Checks a whole definition document against the table
// (definition_table.h), collecting every problem, and adds the rules that
// the table's hooks stand for.
class Validator : public definition_internal::HookHandler {
 public:
  explicit Validator(const ActionNames& native) : native_(native) {}

  std::vector<DefinitionError> Run(const json& doc) {
    if (!doc.is_object()) {
      problems_.Add("", "a workflow definition must be a JSON object");
    } else {
      root_ = &doc;
      if (const json* steps = Find(doc, "steps"); steps && steps->is_array()) {
        IndexSteps(*steps, "steps", "", {}, nullptr);
      }
      definition_internal::CheckShape(definition_internal::DefinitionShape(),
                                      doc, "", &problems_, this);
    }
    return problems_.Take();
  }

  void OnHook(const Shape& shape, const json* value, const std::string& path,
              size_t index) override;

 private:
  // The node's own shape; true if it has the shape's type.
  bool CheckOwnShape(const Shape& shape, const json& value,
                     const std::string& path) {
    return definition_internal::CheckShape(shape, value, path, &problems_,
                                           this);
  }
  // Where a step sits: from the top, the list (a steps array) and position
  // of each step that encloses it and then its own.
  struct Place {
    std::vector<std::pair<const json*, size_t>> chain;
    std::string name;            // as StepSpec::name ("" if it has none)
    std::string path;            // as StepSpec::path
    std::string where;           // as StepSpec::where
    const Place* map = nullptr;  // the map step it runs in, if any
    size_t depth() const { return chain.size() - 1; }
  };
  void IndexSteps(const json& list, const std::string& where,
                  const std::string& prefix,
                  std::vector<std::pair<const json*, size_t>> chain,
                  const Place* map);
  static bool RunsBefore(const Place& a, const Place& b);
  // False (having said why at `path`) if a step list below `step_` would
  // nest too deep.
  bool CheckNesting(const std::string& path, const char* what);
  void CheckBranches(const json& branches, const std::string& path);
  void CheckMapSteps(const json& steps, const std::string& path);
  void CheckTolerated(const json* value, const std::string& path);
  void CheckInputSchemaKey(const json& schema);
  void CheckExamples(const json& examples);
  void CheckUniqueName(const json& name, const std::string& path);
  void CheckAction(const json& action, const std::string& path);
  void CheckParams(const Shape& shape, const json* params,
                   const std::string& path);
  void CheckBackoffOrder(const json& retry, const std::string& path);
  void CheckTemplates(const json& value, const std::string& path);
  void CheckStepRef(const TemplateRef& ref, const std::string& path);

  const ActionNames& native_;
  Problems problems_;
  const json* root_ = nullptr;
  // Every step object, nested ones included, and where it sits.
  std::map<const json*, Place> places_;
  // Each step name, and each path, and the first step that has it:
  // templates and duplicates refer to it.
  std::map<std::string, const Place*> first_by_name_;
  std::map<std::string, const Place*> first_by_path_;
  // Where the walk is: the step, whether in its compensation, and the
  // built-in action of the spec being checked ("" if none).
  const Place* step_ = nullptr;
  bool compensation_ = false;
  std::string builtin_;
};

void Validator::OnHook(const Shape& shape, const json* value,
                       const std::string& path, size_t /*index*/) {
  using definition_internal::Hook;
  // Context first: what is inside a step or a compensation depends on it.
  if (shape.hook == Hook::kStep) {
    const auto it = value != nullptr ? places_.find(value) : places_.end();
    step_ = it != places_.end() ? &it->second : nullptr;
    compensation_ = false;
  }
  if (shape.hook == Hook::kBranches) {
    if (value != nullptr && CheckOwnShape(shape, *value, path)) {
      CheckBranches(*value, path);
    }
    return;
  }
  if (shape.hook == Hook::kMapSteps) {
    if (value != nullptr && CheckOwnShape(shape, *value, path)) {
      CheckMapSteps(*value, path);
    }
    return;
  }
  if (shape.hook == Hook::kTolerated) return CheckTolerated(value, path);
  if (shape.hook == Hook::kMapItems) {
    if (value != nullptr && CheckOwnShape(shape, *value, path)) {
      CheckTemplates(*value, path);
    }
    return;
  }
  if (shape.hook == Hook::kCompensate) compensation_ = true;
  if (shape.hook == Hook::kStep || shape.hook == Hook::kCompensate ||
      shape.hook == Hook::kAction) {
    builtin_.clear();
  }
  if (shape.hook == Hook::kParams) return CheckParams(shape, value, path);
  const bool has_shape = value != nullptr && CheckOwnShape(shape, *value, path);
  switch (shape.hook) {
    case Hook::kInputSchema:
      if (has_shape) CheckInputSchemaKey(*value);
      break;
    case Hook::kExamples:
      if (has_shape) CheckExamples(*value);
      break;
    case Hook::kStepName:
      if (has_shape) CheckUniqueName(*value, path);
      break;
    case Hook::kAction:
      if (has_shape) CheckAction(*value, path);
      break;
    case Hook::kRetry:
      if (has_shape) CheckBackoffOrder(*value, path);
      break;
    case Hook::kCompensate:
      compensation_ = false;
      break;
    case Hook::kStep:
    case Hook::kParams:
    case Hook::kBranches:
    case Hook::kMapItems:
    case Hook::kMapSteps:
    case Hook::kTolerated:
    case Hook::kNone:
      break;
  }
}

void Validator::CheckUniqueName(const json& name, const std::string& path) {
  if (step_ == nullptr) return;
  const std::string& text = name.get_ref<const std::string&>();
  if (const Place* first = first_by_name_.at(text); first != step_) {
    problems_.Add(
        path, "duplicate step name '" + text + "' (also " + first->where + ")");
  } else if (const Place* same = first_by_path_.at(step_->path);
             same != step_) {
    problems_.Add(path, "step path '" + step_->path + "' is also the path of " +
                            same->where);
  }
}

// Names first: a template may refer to any step, earlier or later.
void Validator::IndexSteps(const json& list, const std::string& where,
                           const std::string& prefix,
                           std::vector<std::pair<const json*, size_t>> chain,
                           const Place* map) {
  for (size_t i = 0; i < list.size(); ++i) {
    const json& step = list[i];
    if (!step.is_object()) continue;
    const json* name = Find(step, "name");
    Place place;
    place.chain = chain;
    place.chain.emplace_back(&list, i);
    place.where = JoinIndex(where, i);
    if (name != nullptr && name->is_string())
      place.name = name->get<std::string>();
    place.path = prefix + (name != nullptr && name->is_string()
                               ? name->get<std::string>()
                               : place.where);
    place.map = map;
    const Place& placed =
        places_.emplace(&step, std::move(place)).first->second;
    if (name != nullptr && name->is_string()) {
      first_by_name_.emplace(name->get<std::string>(), &placed);
    }
    first_by_path_.emplace(placed.path, &placed);
    const json* map_step = Find(step, "map");
    const json* item_steps = map_step != nullptr && map_step->is_object()
                                 ? Find(*map_step, "steps")
                                 : nullptr;
    if (item_steps != nullptr && item_steps->is_array()) {
      IndexSteps(*item_steps, JoinKey(placed.where, "map.steps"),
                 placed.path + ".", placed.chain, &placed);
    }
    const json* parallel = Find(step, "parallel");
    const json* branches = parallel != nullptr && parallel->is_object()
                               ? Find(*parallel, "branches")
                               : nullptr;
    if (branches == nullptr || !branches->is_object()) continue;
    for (const auto& [branch, steps] : branches->items()) {
      if (!steps.is_array()) continue;
      IndexSteps(steps,
                 JoinKey(JoinKey(placed.where, "parallel.branches"), branch),
                 placed.path + "." + branch + ".", placed.chain, map);
    }
  }
}

bool Validator::CheckNesting(const std::string& path, const char* what) {
  // A top-level parallel or map step nests at 1, one in its steps at 2.
  if (step_ != nullptr && step_->depth() + 1 > kMaxNestingDepth) {
    problems_.Add(path, std::string(what) + " nest at most " +
                            std::to_string(kMaxNestingDepth) + " deep");
    return false;
  }
  return true;
}

// Each branch's steps are checked as the top-level steps are.
void Validator::CheckBranches(const json& branches, const std::string& path) {
  const Place* parallel = step_;
  if (branches.empty()) problems_.Add(path, "must have at least one branch");
  if (branches.size() > kMaxBranches) {
    problems_.Add(path, "must have at most " + std::to_string(kMaxBranches) +
                            " branches");
  }
  if (!CheckNesting(path, "parallel and map steps")) return;
  static const re2::RE2 kBranchName(definition_internal::kBranchNamePattern);
  for (const auto& [branch, steps] : branches.items()) {
    if (!re2::RE2::FullMatch(branch, kBranchName)) {
      problems_.Add(path, "branch name '" + branch + "' must match " +
                              definition_internal::kBranchNamePattern);
    }
    CheckOwnShape(definition_internal::StepsShape(), steps,
                  JoinKey(path, branch));
  }
  step_ = parallel;
}

// An item's steps are checked as the top-level steps are.
void Validator::CheckMapSteps(const json& steps, const std::string& path) {
  const Place* map = step_;
  if (!CheckNesting(path, "parallel and map steps")) return;
  // A map inside a map runs max_concurrency items of each of the outer
  // map's items under way: the snapshot holds one wait per attempt in
  // flight, so the product is bounded as one map's concurrency is.
  if (map != nullptr && map->map != nullptr) {
    uint64_t product = 1;
    std::string factors;
    for (const Place* m = map; m != nullptr; m = m->map) {
      const auto& [list, at] = m->chain.back();
      const json* spec = Find((*list)[at], "map");
      const json* value =
          spec != nullptr ? Find(*spec, "max_concurrency") : nullptr;
      // Out of range or not an integer: its own check says so.
      const uint64_t n = value != nullptr && value->is_number_integer() &&
                                 value->get<int64_t>() >= 1
                             ? value->get<uint64_t>()
                             : kDefaultMapConcurrency;
      product *= std::min<uint64_t>(n, kMaxMapConcurrency);
      factors = m->path + ": " + std::to_string(n) +
                (factors.empty() ? "" : ", " + factors);
    }
    if (product > kMaxMapConcurrency) {
      problems_.Add(JoinKey(map->where, "map.max_concurrency"),
                    "with the map steps around it, " + std::to_string(product) +
                        " items at a time (" + factors +
                        "); the max_concurrency of "
                        "nested map steps multiply, and may come to at most " +
                        std::to_string(kMaxMapConcurrency));
    }
  }
  CheckOwnShape(definition_internal::StepsShape(), steps, path);
  step_ = map;
}

void Validator::CheckTolerated(const json* value, const std::string& path) {
  if (value == nullptr) return;
  static const re2::RE2 kPercent(definition_internal::kPercentPattern);
  if (value->is_number_integer() && value->get<int64_t>() >= 0 &&
      value->get<int64_t>() <= int64_t{kMaxMapItems}) {
    return;
  }
  if (value->is_string() &&
      re2::RE2::FullMatch(value->get_ref<const std::string&>(), kPercent)) {
    return;
  }
  problems_.Add(path, "must be a count of items (an integer from 0 to " +
                          std::to_string(kMaxMapItems) +
                          ") or a percentage of them (\"0%\" to \"100%\")");
}

// Inputs shown to clients (list_workflows, a workflow's own tool): each
// must be one the workflow accepts, or an agent would be taught to fail.
void Validator::CheckExamples(const json& examples) {
  const json* schema = Find(*root_, "input_schema");
  // Against a schema that is itself wrong, the schema's errors say it.
  if (schema == nullptr || !schema->is_object() ||
      !CheckInputSchema(*schema, "").empty()) {
    return;
  }
  for (size_t i = 0; i < examples.size(); ++i) {
    if (!examples[i].is_object()) continue;
    if (Status s = ValidateInput(*schema, examples[i]); !s.ok()) {
      problems_.Add(JoinIndex("examples", i),
                    "does not match input_schema: " + s.message());
    }
  }
}

void Validator::CheckInputSchemaKey(const json& schema) {
  for (const std::string& error : CheckInputSchema(schema, "input_schema")) {
    // "input_schema.properties.qty.minimum: must be a number". A property
    // name containing ": " would move the split, but ToString() prints the
    // same text either way.
    const size_t colon = error.find(": ");
    if (colon == std::string::npos) {
      problems_.Add("input_schema", error);
    } else {
      problems_.Add(error.substr(0, colon), error.substr(colon + 2));
    }
  }
}

void Validator::CheckAction(const json& action, const std::string& path) {
  const std::string& name = action.get_ref<const std::string&>();
  builtin_.clear();
  if (IsBuiltinAction(name)) {
    builtin_ = name;
  } else if (native_.count(name) == 0) {
    problems_.Add(path, "unknown action '" + name + "'");
  }
}

// A built-in action's params have its own shape; absent params are {}.
void Validator::CheckParams(const Shape& shape, const json* params,
                            const std::string& path) {
  static const json kNoParams = json::object();
  if (params != nullptr && !CheckOwnShape(shape, *params, path)) return;
  const json& checked = params != nullptr ? *params : kNoParams;
  if (!builtin_.empty()) {
    CheckOwnShape(*definition_internal::ActionParamsShapes().at(builtin_),
                  checked, path);
  }
  CheckTemplates(checked, path);
}

// The one rule of retry that spans two keys. An absent key has its
// default; one that is not a valid duration has said so already.
void Validator::CheckBackoffOrder(const json& retry, const std::string& path) {
  const RetryPolicy defaults;
  auto duration = [](const json* v) -> std::optional<uint64_t> {
    if (v == nullptr || !v->is_number_unsigned() ||
        v->get<uint64_t>() > kMaxDurationMs) {
      return std::nullopt;
    }
    return v->get<uint64_t>();
  };
  const json* initial_json = Find(retry, "initial_backoff_ms");
  const std::optional<uint64_t> initial =
      initial_json ? duration(initial_json)
                   : std::optional<uint64_t>(defaults.initial_backoff_ms);
  if (const json* max_json = Find(retry, "max_backoff_ms")) {
    const std::optional<uint64_t> max = duration(max_json);
    if (initial && max && *max < *initial) {
      problems_.Add(
          JoinKey(path, "max_backoff_ms"),
          "must be >= initial_backoff_ms (" + std::to_string(*initial) + ")");
    }
  } else if (initial && *initial > defaults.max_backoff_ms) {
    problems_.Add(JoinKey(path, "initial_backoff_ms"),
                  "must be <= max_backoff_ms (" +
                      std::to_string(defaults.max_backoff_ms) + " by default)");
  }
}

// Template syntax of every string below `value`, and the steps they name.
void Validator::CheckTemplates(const json& value, const std::string& path) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      CheckTemplates(child, JoinKey(path, key));
    }
    return;
  }
  if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      CheckTemplates(value[i], JoinIndex(path, i));
    }
    return;
  }
  if (!value.is_string()) return;
  Result<std::vector<TemplateRef>> refs = CollectTemplateRefs(value, path);
  if (!refs.ok()) {
    // The message is "<path>: <problem>"; keep the path structured.
    problems_.Add(path, refs.status().message().substr(path.size() + 2));
    return;
  }
  for (const TemplateRef& ref : *refs) {
    if (ref.root == TemplateRef::Root::kStepOutput) {
      CheckStepRef(ref, path);
    }
    const bool item = ref.root == TemplateRef::Root::kItem ||
                      ref.root == TemplateRef::Root::kIndex;
    if (item && step_ != nullptr && step_->map == nullptr) {
      problems_.Add(
          path, std::string(ref.root == TemplateRef::Root::kItem ? "${item}"
                                                                 : "${index}") +
                    " is a map step's item, and this step is not "
                    "one of a map step's steps");
    }
  }
}

// Whether step `a` has finished before step `b` starts: `a` comes earlier
// in a list that holds `b` or a step enclosing it. A step in another branch
// of the same parallel step runs beside `b`; a parallel step that encloses
// `b` finishes after it.
bool Validator::RunsBefore(const Place& a, const Place& b) {
  for (size_t level = 0; level < a.chain.size() && level < b.chain.size();
       ++level) {
    const auto& [a_list, a_at] = a.chain[level];
    const auto& [b_list, b_at] = b.chain[level];
    if (a_list != b_list) return false;
    if (a_at != b_at) return a_at < b_at;
  }
  return false;
}

// A step's params see the outputs of steps that ran before it only; its
// compensation runs after the step itself, so it may also see the step's
// own output.
void Validator::CheckStepRef(const TemplateRef& ref, const std::string& path) {
  const auto it = first_by_name_.find(ref.step);
  if (it == first_by_name_.end()) {
    problems_.Add(
        path, StepRefText(ref) + " refers to unknown step '" + ref.step + "'");
    return;
  }
  if (step_ == nullptr) return;
  // A step inside a map step runs once per item: readable only by steps of
  // the same item (in that map step, or in a map step inside it).
  const auto within = [](const Place* map, const Place* step) {
    for (const Place* m = step->map; m != nullptr; m = m->map) {
      if (m == map) return true;
    }
    return false;
  };
  if (const Place* map = it->second->map;
      map != nullptr && !within(map, step_)) {
    problems_.Add(path, StepRefText(ref) + " refers to step '" + ref.step +
                            "', which runs once per item of map step '" +
                            map->path + "': read ${steps." + map->name +
                            ".output} after it instead");
    return;
  }
  const bool runs_before =
      RunsBefore(*it->second, *step_) || (compensation_ && it->second == step_);
  if (!runs_before) {
    problems_.Add(path, StepRefText(ref) + " refers to step '" + ref.step +
                            "', which does not run before this " +
                            (compensation_ ? "compensation" : "step"));
  }
}

// ---- Building the model from a valid document ------------------------------

RetryPolicy ParseRetry(const json* retry) {
  RetryPolicy policy;
  if (retry == nullptr) return policy;
  if (const json* v = Find(*retry, "max_attempts")) {
    policy.max_attempts = v->get<uint32_t>();
  }
  if (const json* v = Find(*retry, "initial_backoff_ms")) {
    policy.initial_backoff_ms = v->get<uint64_t>();
  }
  if (const json* v = Find(*retry, "multiplier")) {
    policy.multiplier = v->get<double>();
  }
  if (const json* v = Find(*retry, "max_backoff_ms")) {
    policy.max_backoff_ms = v->get<uint64_t>();
  }
  if (const json* v = Find(*retry, "jitter")) policy.jitter = v->get<double>();
  if (const json* v = Find(*retry, "non_retryable")) {
    policy.non_retryable = v->get<std::vector<std::string>>();
  }
  return policy;
}

ActionSpec ParseAction(const json& spec) {
  ActionSpec action;
  action.action = spec.at("action").get<std::string>();
  if (const json* params = Find(spec, "params")) action.params = *params;
  action.templated = HasTemplateSyntax(action.params);
  action.retry = ParseRetry(Find(spec, "retry"));
  if (const json* timeout = Find(spec, "timeout_ms")) {
    action.timeout_ms = timeout->get<uint64_t>();
  }
  return action;
}

// Appends the steps of `list` (and theirs, depth first) to def->steps;
// returns their indices.
std::vector<int> ParseSteps(const json& list, const std::string& where,
                            const std::string& prefix, int parent, int map,
                            WorkflowDefinition* def);

MapSpec ParseMap(const json& doc) {
  MapSpec map;
  map.items = doc.at("items");
  if (const json* v = Find(doc, "max_concurrency")) {
    map.max_concurrency = v->get<uint32_t>();
  }
  if (const json* v = Find(doc, "tolerated_failures")) {
    if (v->is_string()) {
      const std::string& text = v->get_ref<const std::string&>();
      map.tolerated_percent =
          static_cast<uint32_t>(std::stoul(text.substr(0, text.size() - 1)));
    } else {
      map.tolerated_count = v->get<uint32_t>();
    }
  }
  return map;
}

StepSpec ParseStep(const json& doc) {
  StepSpec step;
  step.name = doc.at("name").get<std::string>();
  if (doc.contains("parallel")) {
    step.kind = StepKind::kParallel;
    return step;
  }
  if (const json* map = Find(doc, "map")) {
    step.kind = StepKind::kMap;
    step.map = ParseMap(*map);
    return step;
  }
  step.run = ParseAction(doc);
  if (const json* compensate = Find(doc, "compensate")) {
    step.compensate = ParseAction(*compensate);
  }
  if (const json* v = Find(doc, "circuit_breaker")) {
    step.circuit_breaker = v->get<std::string>();
  }
  if (const json* v = Find(doc, "rate_limit")) {
    step.rate_limit = v->get<std::string>();
  }
  return step;
}

WorkflowDefinition BuildDefinition(const json& doc) {
  WorkflowDefinition def;
  def.name = doc.at("name").get<std::string>();
  def.version = doc.at("version").get<uint32_t>();
  if (const json* v = Find(doc, "description")) {
    def.description = v->get<std::string>();
  }
  if (const json* v = Find(doc, "input_schema")) def.input_schema = *v;
  if (const json* v = Find(doc, "examples")) def.examples = *v;
  if (const json* v = Find(doc, "on_failure"); v && *v == "park") {
    def.on_failure = OnFailure::kPark;
  }
  if (const json* v = Find(doc, "max_concurrency")) {
    def.max_concurrency = v->get<uint32_t>();
  }
  if (const json* dlq = Find(doc, "dlq")) {
    if (const json* a = Find(*dlq, "auto_replay")) {
      def.auto_replay = AutoReplay{a->at("max_replays").get<uint32_t>(),
                                   a->at("after_ms").get<int64_t>()};
    }
  }
  def.sequence = ParseSteps(doc.at("steps"), "steps", "", -1, -1, &def);
  def.IndexPaths();
  return def;
}

std::vector<int> ParseSteps(const json& list, const std::string& where,
                            const std::string& prefix, int parent, int map,
                            WorkflowDefinition* def) {
  std::vector<int> indices;
  for (size_t i = 0; i < list.size(); ++i) {
    const int index = static_cast<int>(def->steps.size());
    indices.push_back(index);
    StepSpec step = ParseStep(list[i]);
    step.parent = parent;
    step.in_map = map;
    step.where = JoinIndex(where, i);
    step.path = prefix + step.name;
    def->steps.push_back(std::move(step));
    const StepSpec& placed = def->steps.back();
    if (placed.kind == StepKind::kMap) {
      const std::string path = placed.path;
      std::vector<int> item_steps = ParseSteps(
          list[i].at("map").at("steps"), JoinKey(placed.where, "map.steps"),
          path + ".", index, index, def);
      MapSpec& spec = def->steps[static_cast<size_t>(index)].map;
      spec.steps = std::move(item_steps);
      spec.size = static_cast<int>(def->steps.size()) - index - 1;
      continue;
    }
    if (placed.kind != StepKind::kParallel) continue;
    const std::string path = placed.path;
    const std::string branches_where =
        JoinKey(placed.where, "parallel.branches");
    std::vector<Branch> branches;
    for (const auto& [name, steps] :
         list[i].at("parallel").at("branches").items()) {
      branches.push_back(
          {name, ParseSteps(steps, JoinKey(branches_where, name),
                            path + "." + name + ".", index, map, def)});
    }
    def->steps[static_cast<size_t>(index)].branches = std::move(branches);
  }
  return indices;
}

}  // namespace

std::string DefinitionError::ToString() const {
  return path.empty() ? message : path + ": " + message;
}

int WorkflowDefinition::StepIndex(const std::string& step_name) const {
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].name == step_name) return static_cast<int>(i);
  }
  return -1;
}

void WorkflowDefinition::IndexPaths() {
  by_path_.clear();
  for (size_t i = 0; i < steps.size(); ++i) {
    by_path_.emplace(steps[i].path, static_cast<int>(i));
  }
}

int WorkflowDefinition::StepAtPath(std::string_view path) const {
  if (by_path_.size() == steps.size()) {
    const auto it = by_path_.find(path);
    return it == by_path_.end() ? -1 : it->second;
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].path == path) return static_cast<int>(i);
  }
  return -1;
}

std::vector<int> EnclosingMaps(const WorkflowDefinition& def, int step) {
  std::vector<int> maps;
  for (int m = def.steps[static_cast<size_t>(step)].in_map; m >= 0;
       m = def.steps[static_cast<size_t>(m)].in_map) {
    maps.push_back(m);
  }
  std::reverse(maps.begin(), maps.end());
  return maps;
}

std::string InstancePath(const WorkflowDefinition& def,
                         const StepInstance& at) {
  const StepSpec& spec = def.steps[static_cast<size_t>(at.step)];
  if (spec.in_map < 0 || at.item < 0) return spec.path;
  // Each index goes after its map's path, innermost first so that the
  // offsets of the outer ones still hold.
  std::string path = spec.path;
  int map = spec.in_map;
  auto index = static_cast<uint64_t>(at.item);
  for (size_t k = at.outer.size() + 1; k-- > 0 && map >= 0;) {
    const size_t end = def.steps[static_cast<size_t>(map)].path.size();
    path.insert(end, "[" + std::to_string(index) + "]");
    map = def.steps[static_cast<size_t>(map)].in_map;
    if (k > 0) index = at.outer[k - 1];
  }
  return path;
}

StepInstance InstanceAt(const WorkflowDefinition& def, std::string_view path) {
  // The path without its indices, and where each index stood in it.
  std::string step_path;
  std::vector<std::pair<size_t, uint32_t>> indices;
  for (size_t pos = 0; pos < path.size();) {
    const size_t open = path.find('[', pos);
    step_path.append(path.substr(pos, open - pos));
    if (open == std::string_view::npos) break;
    const size_t close = path.find(']', open);
    if (close == std::string_view::npos) return {};
    const std::string_view digits = path.substr(open + 1, close - open - 1);
    if (digits.empty() || digits.size() > 7 ||
        (digits.size() > 1 && digits[0] == '0') ||
        !std::all_of(digits.begin(), digits.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return {};
    }
    indices.emplace_back(
        step_path.size(),
        static_cast<uint32_t>(std::stoul(std::string(digits))));
    pos = close + 1;
  }
  const int step = def.StepAtPath(step_path);
  if (step < 0 || indices.empty()) return {step, -1, {}};
  // One index right after each enclosing map step's path.
  const std::vector<int> maps = EnclosingMaps(def, step);
  if (maps.size() != indices.size()) return {};
  StepInstance at{step, indices.back().second, {}};
  for (size_t k = 0; k < maps.size(); ++k) {
    if (def.steps[static_cast<size_t>(maps[k])].path.size() !=
        indices[k].first) {
      return {};
    }
    if (k + 1 < maps.size()) at.outer.push_back(indices[k].second);
  }
  return at;
}

int WorkflowDefinition::Depth(int step) const {
  int depth = 0;
  for (int at = steps[static_cast<size_t>(step)].parent; at >= 0;
       at = steps[static_cast<size_t>(at)].parent) {
    ++depth;
  }
  return depth;
}

std::vector<DefinitionError> ValidateDefinition(const nlohmann::json& doc,
                                                const ActionNames& native) {
  try {
    return Validator(native).Run(doc);
  } catch (const std::exception& e) {  // a bug must not escape as a crash
    return {{"", std::string("internal error: ") + e.what()}};
  }
}

Result<WorkflowDefinition> ParseDefinition(const nlohmann::json& doc,
                                           const ActionNames& native) {
  const std::vector<DefinitionError> errors = ValidateDefinition(doc, native);
  if (!errors.empty()) {
    std::string message = "invalid workflow definition: ";
    for (size_t i = 0; i < errors.size(); ++i) {
      if (i > 0) message += "; ";
      message += errors[i].ToString();
    }
    return Status::InvalidArgument(message);
  }
  try {
    return BuildDefinition(doc);
  } catch (const std::exception& e) {  // validation let something through
    return Status::InvalidArgument(
        std::string("invalid workflow definition: internal error: ") +
        e.what());
  }
}

bool ErrorKindMatches(const std::string& pattern, const std::string& kind) {
  if (pattern == kind) return true;
  if (pattern != "http_4xx" && pattern != "http_5xx") return false;
  // kind must be "http_" and three digits in the pattern's class.
  if (kind.size() != 8 || !kind.starts_with("http_") || kind[5] != pattern[5]) {
    return false;
  }
  for (size_t i = 6; i < 8; ++i) {
    if (kind[i] < '0' || kind[i] > '9') return false;
  }
  // Timeouts and throttling are worth retrying even though they are 4xx.
  return kind != "http_408" && kind != "http_429";
}

bool IsBuiltinAction(const std::string& action) {
  const auto& names = definition_internal::BuiltinActionNames();
  return std::find(names.begin(), names.end(), action) != names.end();
}

nlohmann::json DefinitionJsonSchema(const ActionNames& native) {
  return definition_internal::ShapeSchema(
      definition_internal::DefinitionShape(), native);
}

}  // namespace cde
