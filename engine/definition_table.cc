#include "engine/definition_table.h"

#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/input_schema.h"

namespace cde::definition_internal {
namespace {

using nlohmann::json;
using Type = Shape::Type;
using ShapePtr = std::shared_ptr<const Shape>;

constexpr uint64_t kMaxUint32 = std::numeric_limits<uint32_t>::max();
// What IsWholeTemplate accepts, as a pattern for clients.
constexpr char kWholeTemplate[] = "^\\$\\{[^}]*\\}$";

// ---- Building the table ----------------------------------------------------

std::shared_ptr<const re2::RE2> Compile(const std::string& pattern) {
  auto re = std::make_shared<re2::RE2>(pattern);
  if (!re->ok()) std::abort();  // the table's own patterns are constants
  return re;
}

Shape Of(Type type, std::string description) {
  Shape s;
  s.type = type;
  s.description = std::move(description);
  return s;
}

ShapePtr Share(Shape s) { return std::make_shared<const Shape>(std::move(s)); }

Shape Integer(uint64_t min, uint64_t max, std::string description) {
  Shape s = Of(Type::kInteger, std::move(description));
  s.min = min;
  s.max = max;
  return s;
}

Shape Number(double min, double max, std::string description) {
  Shape s = Of(Type::kNumber, std::move(description));
  s.min_number = min;
  s.max_number = max;
  return s;
}

Shape String(std::string description) {
  return Of(Type::kString, std::move(description));
}

Shape Matching(std::string pattern, std::string rule, std::string description) {
  Shape s = String(std::move(description));
  s.compiled = Compile(pattern);
  s.pattern = std::move(pattern);
  s.rule = std::move(rule);
  return s;
}

Shape OneOf(std::vector<std::string> values, std::string rule,
            std::string description) {
  Shape s = String(std::move(description));
  s.one_of = std::move(values);
  s.rule = std::move(rule);
  return s;
}

Shape Object(std::vector<Property> properties, std::string description) {
  Shape s = Of(Type::kObject, std::move(description));
  s.properties = std::move(properties);
  return s;
}

Shape OpenObject(std::string description) {
  Shape s = Of(Type::kObject, std::move(description));
  s.closed = false;
  return s;
}

Shape Array(Shape items, std::string description) {
  Shape s = Of(Type::kArray, std::move(description));
  s.items = Share(std::move(items));
  return s;
}

Shape StringMap(std::string description) {
  return Of(Type::kMap, std::move(description));
}

Shape With(Shape s, Hook hook) {
  s.hook = hook;
  return s;
}

Shape Templatable(Shape s) {
  s.template_ok = true;
  return s;
}

Property Key(std::string key, Shape shape, bool required = false) {
  return {std::move(key), Share(std::move(shape)), required};
}

constexpr bool kRequired = true;

Shape NameShape(std::string description) {
  return Matching("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                  "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}",
                  std::move(description));
}

Shape DurationMs(uint64_t min, std::string description) {
  return Integer(min, kMaxDurationMs, std::move(description));
}

Shape RetryShape() {
  const RetryPolicy defaults;
  Shape non_retryable =
      Array(String("an error kind, or http_4xx / http_5xx"),
            "Error kinds that fail the step at once, without retry: "
            "\"http_404\", \"connection\", \"timeout\", \"exit_code:3\", "
            "\"failed\", or the classes http_4xx (not 408, 429) and "
            "http_5xx. Default [\"http_4xx\"].");
  non_retryable.type_message = "must be an array of strings";
  Shape kind = String("an error kind");
  kind.min_length = 1;
  non_retryable.items = Share(std::move(kind));
  return With(
      Object(
          {Key("max_attempts",
               Integer(1, 1000,
                       "Attempts in all, the first included; 1 means no "
                       "retry. Default " +
                           std::to_string(defaults.max_attempts) + ".")),
           Key("initial_backoff_ms",
               DurationMs(0, "Delay before the second attempt. Default " +
                                 std::to_string(defaults.initial_backoff_ms) +
                                 ".")),
           Key("multiplier",
               Number(1.0, std::numeric_limits<double>::infinity(),
                      "Each delay is the previous one times this. Default "
                      "2.")),
           Key("max_backoff_ms",
               DurationMs(0,
                          "The longest delay, at least "
                          "initial_backoff_ms. Default " +
                              std::to_string(defaults.max_backoff_ms) + ".")),
           Key("jitter", Number(0.0, 1.0,
                                "Each delay varies by up to this fraction, "
                                "either way. Default 0.2.")),
           Key("non_retryable", std::move(non_retryable))},
          "When and how often a failed attempt is tried again."),
      Hook::kRetry);
}

// The keys that a step shares with its compensation.
std::vector<Property> ActionKeys() {
  return {
      Key("action",
          With(String("What the step does: a built-in action (noop, echo, "
                      "fail, sleep, exec, http) or a native one the server "
                      "registered. Its params are checked by action."),
               Hook::kAction),
          kRequired),
      Key("params",
          With(OpenObject("The action's parameters. Strings may hold "
                          "templates, filled in when the step runs: "
                          "${input.x}, ${steps.NAME.output.y}, "
                          "${saga.id}, ${secret.NAME}. A string that is "
                          "one template takes the referenced value's type."),
               Hook::kParams)),
      Key("retry", RetryShape()),
      Key("timeout_ms",
          DurationMs(1, "Each attempt's deadline; none by default.")),
  };
}

Shape ActionStepShape() {
  std::vector<Property> keys = {
      Key("name",
          With(NameShape("Unique within the definition, nested steps "
                         "included; templates refer to the step's output "
                         "by it."),
               Hook::kStepName),
          kRequired)};
  for (Property& p : ActionKeys()) keys.push_back(std::move(p));
  keys.push_back(
      Key("circuit_breaker",
          String("The breaker this step's failures count against, shared "
                 "by every step that names it. Default: per host (http) "
                 "or per action.")));
  keys.push_back(
      Key("rate_limit", String("A rate limit of the server's configuration "
                               "(rate_limits) that paces this step.")));
  Shape compensate = Object(ActionKeys(),
                            "What undoes this step, run newest first when a "
                            "later step fails for good (on_failure "
                            "\"compensate\") or the saga is cancelled. It "
                            "may read this step's output.");
  compensate.action_spec = true;
  keys.push_back(
      Key("compensate", With(std::move(compensate), Hook::kCompensate)));
  Shape step = Object(std::move(keys), "One step, run after the one before.");
  step.action_spec = true;
  return step;
}

Shape ParallelStepShape() {
  Shape branches = OpenObject(
      "The branches, by name (" + std::string(kBranchNamePattern) +
      "), each a list of steps run in order; the branches run side by side. "
      "1 to " +
      std::to_string(kMaxBranches) +
      " branches; the server's limits.branches may allow fewer.");
  Shape parallel = Object(
      {Key("branches", With(std::move(branches), Hook::kBranches), kRequired)},
      "Branches that run side by side.");
  return Object(
      {Key("name",
           With(NameShape("Unique within the definition, nested steps "
                          "included. Its output is an object of each "
                          "branch's output (its last step's)."),
                Hook::kStepName),
           kRequired),
       Key("parallel", std::move(parallel), kRequired)},
      "A parallel step: runs its branches side by side and succeeds when "
      "all have; when one fails for good, the others are stopped and every "
      "step that ran is compensated.");
}

Shape MapStepShape() {
  Shape items = Of(Type::kArray,
                   "The items, one run of the steps each: an array, or one "
                   "template that gives one when the map step starts "
                   "(${input.orders}, ${steps.NAME.output.list}). At most " +
                       std::to_string(kMaxMapItems) +
                       " items; the server's limits.map_items may allow "
                       "fewer (more fail the step with error kind limit).");
  items.items = Share(Of(Type::kAny, "An item: ${item} in the steps."));
  items.template_ok = true;
  Shape steps = Of(Type::kArray,
                   "The steps run for each item, in order, as the "
                   "definition's steps are; they read the item as ${item} "
                   "and its position as ${index}. They may hold parallel "
                   "and map steps (a map step inside runs once per item; "
                   "${item} inside it is its own item).");
  steps.items = Share(OpenObject("A step."));
  Shape map = Object(
      {Key("items", With(std::move(items), Hook::kMapItems), kRequired),
       Key("max_concurrency",
           Integer(1, kMaxMapConcurrency,
                   "Items under way at once. Default " +
                       std::to_string(kDefaultMapConcurrency) +
                       ". Inside another map step's steps, multiplied by "
                       "the max_concurrency of the map steps around it, "
                       "at most " +
                       std::to_string(kMaxMapConcurrency) + ".")),
       Key("tolerated_failures",
           With(Of(Type::kAny,
                   "How many items may fail for good before the map step "
                   "fails: a count (2) or a percentage of the items "
                   "(\"10%\"). Default 0. A tolerated item's output is "
                   "{\"error\": {\"kind\", \"message\"}}."),
                Hook::kTolerated)),
       Key("steps", With(std::move(steps), Hook::kMapSteps), kRequired)},
      "Steps run once per item, items side by side.");
  return Object(
      {Key("name",
           With(NameShape("Unique within the definition, nested steps "
                          "included. Its output is the array of the items' "
                          "outputs (each its last step's), in item order."),
                Hook::kStepName),
           kRequired),
       Key("map", std::move(map), kRequired)},
      "A map step: runs its steps for each item of an array, up to "
      "max_concurrency items at once, and succeeds when every item has "
      "(or the failures are tolerated); otherwise the items under way are "
      "stopped and every item step that ran is compensated.");
}

Shape StepShape() {
  Shape step = ActionStepShape();
  step.variants = {{"parallel", Share(ParallelStepShape())},
                   {"map", Share(MapStepShape())}};
  return With(std::move(step), Hook::kStep);
}

Shape StepList() {
  Shape steps =
      Array(StepShape(), "The steps, run in order (1 to " +
                             std::to_string(kMaxDefinitionSteps) +
                             " in the whole definition; the server's "
                             "limits.definition_steps may allow fewer).");
  steps.min_items = 1;
  steps.max_items = kMaxDefinitionSteps;
  steps.too_few = "must have at least one step";
  steps.too_many =
      "must have at most " + std::to_string(kMaxDefinitionSteps) + " steps";
  return steps;
}

Shape DefinitionRoot() {
  Shape examples_item = OpenObject("an input the workflow accepts");
  examples_item.type_message = "must be an object (a saga's input)";
  Shape examples =
      Array(std::move(examples_item),
            "Inputs that input_schema accepts, shown to agents as examples.");
  examples.type_message = "must be a non-empty array of example inputs";
  examples.min_items = 1;
  examples.too_few = examples.type_message;

  Shape auto_replay = Object(
      {Key("max_replays",
           Integer(1, 1000, "Replays in a saga's life, manual ones included."),
           kRequired),
       Key("after_ms",
           Integer(0, 2'592'000'000,
                   "How long after parking (at most 30 days)."),
           kRequired)},
      "A parked saga is replayed by itself.");
  Shape dlq = Object({Key("auto_replay", std::move(auto_replay))},
                     "What happens to this workflow's parked sagas.");

  Shape steps = StepList();

  Shape input_schema = OpenObject(
      "JSON Schema of the saga's input, checked at start. Keywords: " +
      [] {
        std::string list;
        for (const std::string& k : InputSchemaKeywords()) {
          list += (list.empty() ? "" : ", ") + k;
        }
        return list;
      }() +
      ". Any other keyword is refused.");

  return Object(
      {Key("name", NameShape("The workflow's name."), kRequired),
       Key("version",
           Integer(1, kMaxUint32,
                   "A registered version never changes: a change is a new "
                   "version. Sagas keep the version they started on."),
           kRequired),
       Key("description",
           String("What the workflow does, shown to agents and in its "
                  "tool.")),
       Key("input_schema", With(std::move(input_schema), Hook::kInputSchema)),
       Key("examples", With(std::move(examples), Hook::kExamples)),
       Key("on_failure",
           OneOf({"compensate", "park"}, R"(must be "compensate" or "park")",
                 "When a step fails for good: \"compensate\" (the "
                 "default) undoes the steps that ran, newest first; "
                 "\"park\" keeps the saga in the dead-letter queue for "
                 "replay_saga.")),
       Key("max_concurrency",
           Integer(1, kMaxUint32,
                   "The most sagas of this workflow that run at once; the "
                   "rest wait their turn.")),
       Key("dlq", std::move(dlq)), Key("steps", std::move(steps), kRequired)},
      "A CDE Orchestrator workflow definition.");
}

// ---- The built-in actions' params -------------------------------------------

Shape FailParams() {
  return Object(
      {Key("fail_attempts",
           Templatable(Integer(
               0, std::numeric_limits<uint64_t>::max(),
               "Fail this many attempts, then succeed; absent: always."))),
       Key("error", String("The error message.")),
       Key("kind", String("The error kind (default \"failed\")."))},
      "fail: fails, for tests and demos.");
}

Shape SleepParams() {
  return Object({Key("duration_ms",
                     Templatable(DurationMs(0,
                                            "How long, on a durable "
                                            "timer that survives "
                                            "restarts.")),
                     kRequired)},
                "sleep: waits.");
}

Shape ExecParams() {
  Shape argv =
      Array(String("an argument"), "The program and its arguments; no shell.");
  argv.template_ok = true;
  argv.type_message = "must be a non-empty array of strings";
  argv.min_items = 1;
  argv.too_few = argv.type_message;
  Shape env = Templatable(StringMap(
      "Environment variables for the program (the server's policy may "
      "allow only some)."));
  env.key_pattern = "^[^=]+$";
  env.key_compiled = Compile(env.key_pattern);
  env.key_rule = "invalid variable name";
  return Object(
      {Key("argv", std::move(argv), kRequired), Key("env", std::move(env)),
       Key("cwd", String("The working directory.")),
       Key("stdin", Of(Type::kAny,
                       "Written to the program's standard "
                       "input (a string, else as JSON)."))},
      "exec: runs a program; its output is its stdout (JSON if it parses).");
}

Shape HttpParams() {
  return Object(
      {Key("timeout_ms", Templatable(DurationMs(1, "The request's deadline."))),
       Key("method",
           Templatable(OneOf({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"},
                             "must be one of GET, POST, PUT, PATCH, DELETE, "
                             "HEAD",
                             "Default GET, or POST with a body."))),
       Key("url",
           Matching("^([Hh][Tt][Tt][Pp][Ss]?://|\\$\\{)",
                    "must start with http:// or https://",
                    "http:// or https://, or a template that renders one."),
           kRequired),
       Key("headers", Templatable(StringMap("Request headers."))),
       Key("body", Of(Type::kAny, "Sent as JSON (a string as is)."))},
      "http: calls a service; a 2xx response's body is the output, any "
      "other status fails with kind http_NNN.");
}

// ---- Rendering as JSON Schema
// ------------------------------------------------

json Render(const Shape& shape, const ActionNames& native);

// For a step or a compensation: the params that go with each built-in
// action.
json ParamsByAction(const ActionNames& native) {
  json all_of = json::array();
  for (const auto& [action, params] : ActionParamsShapes()) {
    if (params->type == Type::kObject && !params->closed &&
        params->properties.empty()) {
      continue;  // takes any params
    }
    json then = {{"properties", {{"params", Render(*params, native)}}}};
    const bool needs_params =
        std::any_of(params->properties.begin(), params->properties.end(),
                    [](const Property& p) { return p.required; });
    if (needs_params) then["required"] = {"params"};
    all_of.push_back({{"if",
                       {{"properties", {{"action", {{"const", action}}}}},
                        {"required", {"action"}}}},
                      {"then", std::move(then)}});
  }
  return all_of;
}

// One object schema for a shape and its variants, so that clients still
// find every key under `properties`: the keys of all, the keys all require,
// and oneOf the keys only each of them requires.
void MergeVariants(const std::vector<json>& variants, json* s) {
  json& properties = (*s)["properties"];
  std::vector<json> required = {s->value("required", json::array())};
  for (const json& variant : variants) {
    for (const auto& [key, value] : variant["properties"].items()) {
      if (!properties.contains(key)) properties[key] = value;
    }
    required.push_back(variant.value("required", json::array()));
  }
  auto in = [](const json& keys, const json& key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  json all = json::array();
  for (const json& key : required[0]) {
    if (std::all_of(required.begin(), required.end(),
                    [&](const json& keys) { return in(keys, key); })) {
      all.push_back(key);
    }
  }
  // Each alternative names its keys in its own `properties` too: strict
  // validators (Ajv) refuse a `required` key they cannot see defined.
  json one_of = json::array();
  for (const json& keys : required) {
    json own = json::array(), named = json::object();
    for (const json& key : keys) {
      if (in(all, key)) continue;
      own.push_back(key);
      named[key.get<std::string>()] = json::object();
    }
    one_of.push_back(
        {{"properties", std::move(named)}, {"required", std::move(own)}});
  }
  (*s)["required"] = std::move(all);
  (*s)["oneOf"] = std::move(one_of);
}

json Render(const Shape& shape, const ActionNames& native) {
  json s = json::object();
  switch (shape.type) {
    case Type::kAny:
      if (shape.hook == Hook::kTolerated) {
        s["oneOf"] =
            json::array({json{{"type", "integer"}, {"minimum", 0}},
                         json{{"type", "string"},
                              {"pattern", std::string(kPercentPattern)}}});
      }
      break;
    case Type::kString:
      if (!shape.one_of.empty()) {
        s["enum"] = shape.one_of;
        break;
      }
      s["type"] = "string";
      if (shape.hook == Hook::kAction) {
        json names = BuiltinActionNames();
        for (const std::string& name : native) names.push_back(name);
        s["enum"] = std::move(names);
      }
      if (shape.min_length > 0) s["minLength"] = shape.min_length;
      if (!shape.pattern.empty()) s["pattern"] = shape.pattern;
      break;
    case Type::kInteger:
      s["type"] = "integer";
      s["minimum"] = shape.min;
      if (shape.max != std::numeric_limits<uint64_t>::max()) {
        s["maximum"] = shape.max;
      }
      break;
    case Type::kNumber:
      s["type"] = "number";
      if (std::isfinite(shape.min_number)) s["minimum"] = shape.min_number;
      if (std::isfinite(shape.max_number)) s["maximum"] = shape.max_number;
      break;
    case Type::kObject: {
      s["type"] = "object";
      json properties = json::object();
      json required = json::array();
      for (const Property& p : shape.properties) {
        properties[p.key] = Render(*p.shape, native);
        if (p.required) required.push_back(p.key);
      }
      if (!properties.empty()) s["properties"] = std::move(properties);
      if (!required.empty()) s["required"] = std::move(required);
      if (shape.closed) s["additionalProperties"] = false;
      if (shape.action_spec) s["allOf"] = ParamsByAction(native);
      if (shape.hook == Hook::kInputSchema) {
        s["propertyNames"] = {{"enum", InputSchemaKeywords()}};
      }
      if (shape.hook == Hook::kBranches) {
        // Each branch is a list of steps as `steps` is; said in words
        // rather than by a recursive $ref, which not every client follows.
        s["propertyNames"] = {{"pattern", std::string(kBranchNamePattern)}};
        s["additionalProperties"] = {
            {"type", "array"},
            {"minItems", 1},
            {"items", {{"type", "object"}}},
            {"description", "A branch: steps as in the definition's steps."}};
        s["minProperties"] = 1;
        s["maxProperties"] = kMaxBranches;
      }
      if (!shape.variants.empty()) {
        std::vector<json> variants;
        for (const auto& [key, variant] : shape.variants) {
          variants.push_back(Render(*variant, native));
        }
        MergeVariants(variants, &s);
      }
      break;
    }
    case Type::kArray:
      s["type"] = "array";
      s["items"] = Render(*shape.items, native);
      if (shape.hook == Hook::kMapSteps) {
        // Steps as in the definition's steps; said in words rather than by
        // a recursive $ref, which not every client follows.
        s["items"] = {{"type", "object"}};
        s["minItems"] = 1;
        break;
      }
      if (shape.min_items > 0) s["minItems"] = shape.min_items;
      if (shape.max_items != std::numeric_limits<size_t>::max()) {
        s["maxItems"] = shape.max_items;
      }
      break;
    case Type::kMap:
      s["type"] = "object";
      s["additionalProperties"] = {{"type", "string"}};
      if (!shape.key_pattern.empty()) {
        s["propertyNames"] = {{"pattern", shape.key_pattern}};
      }
      break;
  }
  if (shape.template_ok) {
    s = {{"anyOf",
          {std::move(s),
           {{"type", "string"},
            {"pattern", kWholeTemplate},
            {"description", "one template, filled in when the step runs"}}}}};
  }
  if (!shape.description.empty()) s["description"] = shape.description;
  return s;
}

// ---- Checking a document
// -----------------------------------------------------

const char* TypeMessage(Type type) {
  switch (type) {
    case Type::kString:
      return "must be a string";
    case Type::kInteger:
      return "must be an integer";
    case Type::kNumber:
      return "must be a number";
    case Type::kArray:
      return "must be an array";
    case Type::kObject:
    case Type::kMap:
      return "must be an object";
    case Type::kAny:
      break;
  }
  return "";
}

bool Refuse(const Shape& shape, const std::string& path, Problems* p) {
  p->Add(path, shape.type_message.empty() ? TypeMessage(shape.type)
                                          : shape.type_message);
  return false;
}

bool CheckString(const Shape& shape, const json& value, const std::string& path,
                 Problems* p) {
  if (!shape.one_of.empty()) {
    if (!value.is_string() ||
        std::find(shape.one_of.begin(), shape.one_of.end(),
                  value.get_ref<const std::string&>()) == shape.one_of.end()) {
      p->Add(path, shape.rule);
      return value.is_string();
    }
    return true;
  }
  if (!value.is_string()) return Refuse(shape, path, p);
  const std::string& s = value.get_ref<const std::string&>();
  if (s.size() < shape.min_length) {
    p->Add(path, "must not be empty");
  } else if (shape.compiled && !re2::RE2::PartialMatch(s, *shape.compiled)) {
    p->Add(path, shape.rule);
  }
  return true;
}

void CheckChild(const Shape& child, const json& value, const std::string& path,
                size_t index, Problems* p, HookHandler* handler) {
  if (child.hook != Hook::kNone && handler != nullptr) {
    handler->OnHook(child, &value, path, index);
  } else {
    CheckShape(child, value, path, p, handler);
  }
}

bool CheckObject(const Shape& shape, const json& value, const std::string& path,
                 Problems* p, HookHandler* handler) {
  if (!value.is_object()) return Refuse(shape, path, p);
  for (const auto& [key, variant] : shape.variants) {
    if (value.contains(key)) {
      return CheckObject(*variant, value, path, p, handler);
    }
  }
  if (shape.closed) {
    for (const auto& item : value.items()) {
      const std::string& key = item.key();
      const bool known = std::any_of(
          shape.properties.begin(), shape.properties.end(),
          [&key](const Property& property) { return property.key == key; });
      if (!known) p->Add(path, "unknown key '" + key + "'");
    }
  }
  for (const Property& property : shape.properties) {
    const std::string child_path = JoinKey(path, property.key);
    const auto it = value.find(property.key);
    if (it != value.end()) {
      CheckChild(*property.shape, *it, child_path, 0, p, handler);
      continue;
    }
    if (property.required) p->Add(child_path, "is required");
    if (property.shape->hook != Hook::kNone && handler != nullptr) {
      handler->OnHook(*property.shape, nullptr, child_path, 0);
    }
  }
  return true;
}

bool CheckArray(const Shape& shape, const json& value, const std::string& path,
                Problems* p, HookHandler* handler) {
  if (!value.is_array()) return Refuse(shape, path, p);
  if (value.size() < shape.min_items) {
    p->Add(path, shape.too_few.empty()
                     ? "must have at least " + std::to_string(shape.min_items) +
                           " items"
                     : shape.too_few);
  }
  if (value.size() > shape.max_items) {
    p->Add(path, shape.too_many.empty()
                     ? "must have at most " + std::to_string(shape.max_items) +
                           " items"
                     : shape.too_many);
  }
  for (size_t i = 0; i < value.size(); ++i) {
    CheckChild(*shape.items, value[i], JoinIndex(path, i), i, p, handler);
  }
  return true;
}

bool CheckMap(const Shape& shape, const json& value, const std::string& path,
              Problems* p) {
  if (!value.is_object()) return Refuse(shape, path, p);
  for (const auto& [key, child] : value.items()) {
    p->String(child, JoinKey(path, key));
  }
  if (shape.key_compiled) {
    for (const auto& [key, child] : value.items()) {
      if (!re2::RE2::PartialMatch(key, *shape.key_compiled)) {
        p->Add(path, shape.key_rule + " '" + key + "'");
      }
    }
  }
  return true;
}

}  // namespace

const std::vector<std::string>& BuiltinActionNames() {
  static const std::vector<std::string> names = {"noop",  "echo", "fail",
                                                 "sleep", "exec", "http"};
  return names;
}

const char kBranchNamePattern[] = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";
const char kPercentPattern[] = "^(100|[1-9]?[0-9])%$";

const Shape& StepsShape() {
  static const Shape* steps = new Shape(StepList());  // never destroyed
  return *steps;
}

const Shape& DefinitionShape() {
  static const Shape* root = new Shape(DefinitionRoot());  // never destroyed
  return *root;
}

const std::map<std::string, std::shared_ptr<const Shape>>&
ActionParamsShapes() {
  static const auto* shapes =
      new std::map<std::string, std::shared_ptr<const Shape>>{
          {"noop", Share(Object({}, "noop: does nothing."))},
          {"echo", Share(OpenObject("echo: returns its params."))},
          {"fail", Share(FailParams())},
          {"sleep", Share(SleepParams())},
          {"exec", Share(ExecParams())},
          {"http", Share(HttpParams())},
      };
  return *shapes;
}

bool CheckShape(const Shape& shape, const json& value, const std::string& path,
                Problems* problems, HookHandler* handler) {
  if (shape.template_ok && IsWholeTemplate(value)) return true;
  switch (shape.type) {
    case Type::kAny:
      return true;
    case Type::kString:
      return CheckString(shape, value, path, problems);
    case Type::kInteger:
      problems->Integer(value, path, shape.min, shape.max);
      return value.is_number_integer();
    case Type::kNumber:
      problems->Number(value, path, shape.min_number, shape.max_number);
      return value.is_number();
    case Type::kObject:
      return CheckObject(shape, value, path, problems, handler);
    case Type::kArray:
      return CheckArray(shape, value, path, problems, handler);
    case Type::kMap:
      return CheckMap(shape, value, path, problems);
  }
  return false;
}

json ShapeSchema(const Shape& shape, const ActionNames& native) {
  return Render(shape, native);
}

}  // namespace cde::definition_internal
