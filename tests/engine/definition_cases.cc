#include "tests/engine/definition_cases.h"

#include <re2/re2.h>

#include <cmath>

#include "engine/definition_checks.h"
#include "engine/definition_table.h"

namespace cde::testing {
namespace {

using definition_internal::JoinIndex;
using definition_internal::JoinKey;
using definition_internal::Property;
using definition_internal::Shape;
using nlohmann::json;
using Type = Shape::Type;

// Strings that break most patterns: the first that a pattern refuses
// becomes the case.
const std::vector<std::string> kNonMatching = {"-starts-badly", "ftp://x",
                                               "A=B", "", " "};

// Walks a shape and the value at `pointer` in the complete definition,
// adding a case for each rule the shape holds there.
class CaseWalker {
 public:
  explicit CaseWalker(json base) : base_(std::move(base)) {}

  void Walk(const Shape& shape, const json::json_pointer& pointer,
            const std::string& path, const std::string& builtin = "") {
    const json& value = base_.at(pointer);
    if (shape.template_ok) {
      Add(path, "a whole template", pointer, "${input.n}", /*refused=*/false);
    }
    switch (shape.type) {
      case Type::kAny:
        return;
      case Type::kString:
        Add(path, "type", pointer, 5);
        if (!shape.one_of.empty()) Add(path, "one of", pointer, "NOT-ONE");
        if (shape.min_length > 0) Add(path, "minLength", pointer, "");
        if (shape.compiled) {
          for (const std::string& s : kNonMatching) {
            if (!re2::RE2::PartialMatch(s, *shape.compiled)) {
              Add(path, "pattern", pointer, s);
              break;
            }
          }
        }
        return;
      case Type::kInteger:
        Add(path, "type", pointer, "x");
        Add(path, "minimum", pointer, static_cast<int64_t>(shape.min) - 1);
        if (shape.max != std::numeric_limits<uint64_t>::max()) {
          Add(path, "maximum", pointer, shape.max + 1);
        }
        return;
      case Type::kNumber:
        Add(path, "type", pointer, "x");
        if (std::isfinite(shape.min_number)) {
          Add(path, "minimum", pointer, shape.min_number - 0.5);
        }
        if (std::isfinite(shape.max_number)) {
          Add(path, "maximum", pointer, shape.max_number + 0.5);
        }
        return;
      case Type::kMap: {
        Add(path, "type", pointer, json::array());
        json with = value;
        with["k"] = 5;
        Add(JoinKey(path, "k"), "value type", pointer, with);
        if (shape.key_compiled) {
          for (const std::string& s : kNonMatching) {
            if (!re2::RE2::PartialMatch(s, *shape.key_compiled)) {
              json bad = value;
              bad[s] = "v";
              Add(path, "key pattern", pointer, bad);
              break;
            }
          }
        }
        return;
      }
      case Type::kArray:
        WalkArray(shape, value, pointer, path);
        return;
      case Type::kObject:
        WalkObject(shape, value, pointer, path, builtin);
        return;
    }
  }

  std::vector<DefinitionCase> Take() { return std::move(cases_); }

 private:
  void WalkArray(const Shape& shape, const json& value,
                 const json::json_pointer& pointer, const std::string& path) {
    Add(path, "type", pointer, json::object());
    if (shape.min_items > 0) Add(path, "minItems", pointer, json::array());
    if (shape.max_items != std::numeric_limits<size_t>::max()) {
      Add(path, "maxItems", pointer,
          json(std::vector<json>(shape.max_items + 1, value.at(0))));
    }
    for (size_t i = 0; i < value.size(); ++i) {
      Walk(*shape.items, pointer / i, JoinIndex(path, i));
    }
  }

  void WalkObject(const Shape& shape, const json& value,
                  const json::json_pointer& pointer, const std::string& path,
                  const std::string& params_of) {
    Add(path, "type", pointer, json::array());
    if (shape.closed) {
      json extra = value;
      extra["zz_unknown"] = 1;
      Add(path, "unknown key", pointer, extra);
    }
    for (const Property& p : shape.properties) {
      if (p.required) {
        json without = value;
        without.erase(p.key);
        Add(JoinKey(path, p.key), "required", pointer, without);
      }
    }
    std::string action;  // of an action spec: its params' own shape
    if (shape.action_spec && value.contains("action")) {
      action = value["action"].get<std::string>();
    }
    const auto& params = definition_internal::ActionParamsShapes();
    if (!params_of.empty()) {
      // The params of a built-in action: their own shape, as well.
      Walk(*params.at(params_of), pointer, path);
      return;
    }
    for (const Property& p : shape.properties) {
      if (!value.contains(p.key)) continue;
      const std::string child = JoinKey(path, p.key);
      if (p.key == "params" && params.count(action) > 0) {
        // Without params, a built-in action that needs some is refused.
        const Shape& own = *params.at(action);
        for (const Property& needed : own.properties) {
          if (!needed.required) continue;
          json without = value;
          without.erase("params");
          Add(JoinKey(child, needed.key), "params required", pointer, without);
          break;
        }
        Walk(*p.shape, pointer / p.key, child, action);
        continue;
      }
      Walk(*p.shape, pointer / p.key, child);
    }
  }

  void Add(const std::string& path, const std::string& rule,
           const json::json_pointer& pointer, json replacement,
           bool refused = true) {
    json doc = base_;
    doc[pointer] = std::move(replacement);
    cases_.push_back({(path.empty() ? "(root)" : path) + ": " + rule, path,
                      std::move(doc), refused, refused});
  }

  json base_;
  std::vector<DefinitionCase> cases_;
};

// Rules that only code checks: JSON Schema cannot say them (unless noted).
std::vector<DefinitionCase> CodeRules() {
  std::vector<DefinitionCase> cases;
  auto add = [&](std::string rule, std::string path, const char* patch,
                 bool schema_refuses = false) {
    json doc = CompleteDefinition();
    doc.merge_patch(json::parse(patch));
    cases.push_back({std::move(rule), std::move(path), std::move(doc), true,
                     schema_refuses});
  };
  // A patch replaces arrays whole: these cases rewrite `steps`.
  add("duplicate step name", "steps[1].name",
      R"({"steps": [{"name": "a", "action": "noop"},
                    {"name": "a", "action": "noop"}]})");
  add("template names an unknown step", "steps[0].params.x",
      R"({"steps": [{"name": "a", "action": "echo",
                     "params": {"x": "${steps.zz.output}"}}]})");
  add("template names a later step", "steps[0].params.x",
      R"({"steps": [{"name": "a", "action": "echo",
                     "params": {"x": "${steps.b.output}"}},
                    {"name": "b", "action": "noop"}]})");
  add("template syntax", "steps[0].params.x",
      R"({"steps": [{"name": "a", "action": "echo",
                     "params": {"x": "${input"}}]})");
  add("max_backoff_ms below initial_backoff_ms",
      "steps[0].retry.max_backoff_ms",
      R"({"steps": [{"name": "a", "action": "noop",
                     "retry": {"initial_backoff_ms": 500,
                               "max_backoff_ms": 100}}]})");
  add("initial_backoff_ms above the default max_backoff_ms",
      "steps[0].retry.initial_backoff_ms",
      R"({"steps": [{"name": "a", "action": "noop",
                     "retry": {"initial_backoff_ms": 60000}}]})");
  add("example that input_schema refuses", "examples[0]",
      R"({"examples": [{"n": "not a number"}]})");
  add("nested input_schema keyword", "input_schema.properties.n",
      R"({"input_schema": {"properties": {"n": {"requried": true}}}})");
  add("input_schema keyword value", "input_schema.type",
      R"({"input_schema": {"type": "strin"}})");
  add("input_schema pattern", "input_schema.properties.s.pattern",
      R"({"input_schema": {"properties": {"s": {"pattern": "(a"}}}})");
  // The schema names the actions it knows.
  add("unknown action", "steps[0].action",
      R"({"steps": [{"name": "a", "action": "htp"}]})",
      /*schema_refuses=*/true);
  add("unknown input_schema keyword", "input_schema",
      R"({"input_schema": {"requried": ["n"]}})", /*schema_refuses=*/true);
  return cases;
}

}  // namespace

json CompleteDefinition() {
  return json::parse(R"({
    "name": "complete", "version": 1, "description": "every key",
    "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    "examples": [{"n": 1}],
    "on_failure": "park", "max_concurrency": 4,
    "dlq": {"auto_replay": {"max_replays": 2, "after_ms": 1000}},
    "steps": [
      {"name": "n", "action": "noop", "params": {},
       "retry": {"max_attempts": 3, "initial_backoff_ms": 10, "multiplier": 2,
                 "max_backoff_ms": 100, "jitter": 0.1,
                 "non_retryable": ["http_4xx"]},
       "timeout_ms": 1000, "circuit_breaker": "b", "rate_limit": "r",
       "compensate": {"action": "echo", "params": {"x": 1},
                      "retry": {"max_attempts": 2, "initial_backoff_ms": 10,
                                "multiplier": 2, "max_backoff_ms": 100,
                                "jitter": 0.1, "non_retryable": ["timeout"]},
                      "timeout_ms": 1000}},
      {"name": "e", "action": "echo", "params": {"any": [1, "${input.n}"]}},
      {"name": "f", "action": "fail",
       "params": {"fail_attempts": 1, "error": "x", "kind": "k"}},
      {"name": "s", "action": "sleep", "params": {"duration_ms": 5}},
      {"name": "x", "action": "exec",
       "params": {"argv": ["true"], "env": {"A": "1"}, "cwd": "/tmp",
                  "stdin": "in"}},
      {"name": "h", "action": "http",
       "params": {"method": "POST", "url": "http://127.0.0.1:1/x",
                  "headers": {"H": "v"}, "body": {"a": 1}, "timeout_ms": 100}}
    ]})");
}

std::vector<DefinitionCase> DefinitionCases() {
  CaseWalker walker(CompleteDefinition());
  walker.Walk(definition_internal::DefinitionShape(), json::json_pointer(), "");
  std::vector<DefinitionCase> cases = walker.Take();
  for (DefinitionCase& c : CodeRules()) cases.push_back(std::move(c));
  return cases;
}

json ToJson(const DefinitionCase& c) {
  return {{"rule", c.rule},
          {"path", c.path},
          {"definition", c.definition},
          {"refused", c.refused},
          {"schema_refuses", c.schema_refuses}};
}

}  // namespace cde::testing
