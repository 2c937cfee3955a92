#include "engine/definition.h"

#include <limits>
#include <map>
#include <utility>

#include "engine/definition_checks.h"
#include "engine/input_schema.h"
#include "engine/templating.h"

namespace cde {
namespace {

using definition_internal::JoinIndex;
using definition_internal::JoinKey;
using definition_internal::Problems;
using nlohmann::json;

// The most any configuration may allow (limits.definition_steps, whose
// default is far lower): each step is a column of every snapshot.
constexpr size_t kMaxSteps = kMaxDefinitionSteps;
constexpr size_t kMaxNameLength = 128;
constexpr char kNamePattern[] = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}";
constexpr uint64_t kMaxUint32 = std::numeric_limits<uint32_t>::max();

const json* Find(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9');
}

// kNamePattern, without a regex: names are checked on every registration.
bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength || !IsAlnum(name[0])) {
    return false;
  }
  for (char c : name) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// The source text of a step-output reference, as the user wrote it: the
// reference syntax has exactly one spelling per TemplateRef.
std::string StepRefText(const TemplateRef& ref) {
  std::string text = "${steps." + ref.step + ".output";
  for (const std::string& segment : ref.path) text += "." + segment;
  return text + "}";
}

// Checks a whole definition document, collecting every problem.
class Validator {
 public:
  explicit Validator(const ActionNames& native) : native_(native) {}

  std::vector<DefinitionError> Run(const json& doc) {
    if (!doc.is_object()) {
      problems_.Add("", "a workflow definition must be a JSON object");
    } else {
      CheckRoot(doc);
    }
    return problems_.Take();
  }

 private:
  void CheckRoot(const json& doc);
  void CheckInputSchemaKey(const json& schema);
  void CheckExamples(const json& examples, const json* schema);
  void CheckDlq(const json& dlq);
  void CheckSteps(const json& steps);
  void CheckStep(const json& step, size_t index);
  void CheckName(const json* name, const std::string& path);
  void CheckAction(const json& spec, const std::string& path, size_t step,
                   bool compensation);
  void CheckRetry(const json& retry, const std::string& path);
  void CheckNonRetryable(const json& kinds, const std::string& path);
  void CheckTemplates(const json& value, const std::string& path, size_t step,
                      bool compensation);
  void CheckStepRef(const TemplateRef& ref, const std::string& path,
                    size_t step, bool compensation);

  const ActionNames& native_;
  Problems problems_;
  // Each step name and the first step that has it; templates and
  // duplicates refer to it.
  std::map<std::string, size_t> first_index_;
};

void Validator::CheckRoot(const json& doc) {
  problems_.UnknownKeys(
      doc, "",
      {"name", "version", "description", "input_schema", "examples",
       "on_failure", "max_concurrency", "dlq", "steps"});
  CheckName(Find(doc, "name"), "name");
  if (const json* version = Find(doc, "version")) {
    problems_.Integer(*version, "version", 1, kMaxUint32);
  } else {
    problems_.Add("version", "is required");
  }
  if (const json* description = Find(doc, "description")) {
    problems_.String(*description, "description");
  }
  const json* schema = Find(doc, "input_schema");
  if (schema != nullptr) CheckInputSchemaKey(*schema);
  if (const json* examples = Find(doc, "examples")) {
    CheckExamples(*examples, schema);
  }
  if (const json* on_failure = Find(doc, "on_failure")) {
    if (*on_failure != "compensate" && *on_failure != "park") {
      problems_.Add("on_failure", R"(must be "compensate" or "park")");
    }
  }
  if (const json* max = Find(doc, "max_concurrency")) {
    problems_.Integer(*max, "max_concurrency", 1, kMaxUint32);
  }
  if (const json* dlq = Find(doc, "dlq")) CheckDlq(*dlq);
  if (const json* steps = Find(doc, "steps")) {
    CheckSteps(*steps);
  } else {
    problems_.Add("steps", "is required");
  }
}

// Inputs shown to clients (list_workflows, a workflow's own tool): each
// must be one the workflow accepts, or an agent would be taught to fail.
void Validator::CheckExamples(const json& examples, const json* schema) {
  if (!examples.is_array() || examples.empty()) {
    problems_.Add("examples", "must be a non-empty array of example inputs");
    return;
  }
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string path = "examples[" + std::to_string(i) + "]";
    if (!examples[i].is_object()) {
      problems_.Add(path, "must be an object (a saga's input)");
      continue;
    }
    // Against a schema that is itself wrong, the schema's errors say it.
    if (schema == nullptr || !schema->is_object() ||
        !CheckInputSchema(*schema, "").empty()) {
      continue;
    }
    if (Status s = ValidateInput(*schema, examples[i]); !s.ok()) {
      problems_.Add(path, "does not match input_schema: " + s.message());
    }
  }
}

void Validator::CheckDlq(const json& dlq) {
  if (!problems_.Object(dlq, "dlq")) return;
  problems_.UnknownKeys(dlq, "dlq", {"auto_replay"});
  const json* auto_replay = Find(dlq, "auto_replay");
  if (auto_replay == nullptr ||
      !problems_.Object(*auto_replay, "dlq.auto_replay")) {
    return;
  }
  problems_.UnknownKeys(*auto_replay, "dlq.auto_replay",
                        {"max_replays", "after_ms"});
  if (const json* n = Find(*auto_replay, "max_replays")) {
    problems_.Integer(*n, "dlq.auto_replay.max_replays", 1, 1000);
  } else {
    problems_.Add("dlq.auto_replay.max_replays", "is required");
  }
  if (const json* ms = Find(*auto_replay, "after_ms")) {
    // Up to 30 days: a redrive further off is an operator's job.
    problems_.Integer(*ms, "dlq.auto_replay.after_ms", 0, 2592000000LL);
  } else {
    problems_.Add("dlq.auto_replay.after_ms", "is required");
  }
}

void Validator::CheckInputSchemaKey(const json& schema) {
  if (!problems_.Object(schema, "input_schema")) return;
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

void Validator::CheckSteps(const json& steps) {
  if (!steps.is_array()) {
    problems_.Add("steps", "must be an array");
    return;
  }
  if (steps.empty()) problems_.Add("steps", "must have at least one step");
  if (steps.size() > kMaxSteps) {
    problems_.Add("steps",
                  "must have at most " + std::to_string(kMaxSteps) + " steps");
  }
  // Names first: a template may refer to any step, earlier or later.
  for (size_t i = 0; i < steps.size(); ++i) {
    const json* name = steps[i].is_object() ? Find(steps[i], "name") : nullptr;
    if (name != nullptr && name->is_string()) {
      first_index_.emplace(name->get<std::string>(), i);
    }
  }
  for (size_t i = 0; i < steps.size(); ++i) CheckStep(steps[i], i);
}

void Validator::CheckStep(const json& step, size_t index) {
  const std::string path = JoinIndex("steps", index);
  if (!problems_.Object(step, path)) return;
  problems_.UnknownKeys(step, path,
                        {"name", "action", "params", "retry", "timeout_ms",
                         "circuit_breaker", "rate_limit", "compensate"});
  const json* name = Find(step, "name");
  CheckName(name, JoinKey(path, "name"));
  if (name != nullptr && name->is_string()) {
    const size_t first = first_index_.at(name->get<std::string>());
    if (first != index) {
      problems_.Add(JoinKey(path, "name"),
                    "duplicate step name '" + name->get<std::string>() +
                        "' (also " + JoinIndex("steps", first) + ")");
    }
  }
  CheckAction(step, path, index, /*compensation=*/false);
  for (const char* key : {"circuit_breaker", "rate_limit"}) {
    if (const json* value = Find(step, key)) {
      problems_.String(*value, JoinKey(path, key));
    }
  }
  const json* compensate = Find(step, "compensate");
  const std::string comp_path = JoinKey(path, "compensate");
  if (compensate == nullptr || !problems_.Object(*compensate, comp_path)) {
    return;
  }
  problems_.UnknownKeys(*compensate, comp_path,
                        {"action", "params", "retry", "timeout_ms"});
  CheckAction(*compensate, comp_path, index, /*compensation=*/true);
}

void Validator::CheckName(const json* name, const std::string& path) {
  if (name == nullptr) {
    problems_.Add(path, "is required");
  } else if (problems_.String(*name, path) &&
             !IsValidName(name->get<std::string>())) {
    problems_.Add(path, std::string("must match ") + kNamePattern);
  }
}

// The keys a step shares with its compensation: action, params, retry,
// timeout_ms.
void Validator::CheckAction(const json& spec, const std::string& path,
                            size_t step, bool compensation) {
  const json* action = Find(spec, "action");
  const std::string action_path = JoinKey(path, "action");
  std::string builtin;  // the action's name if it is a built-in one
  if (action == nullptr) {
    problems_.Add(action_path, "is required");
  } else if (problems_.String(*action, action_path)) {
    const std::string name = action->get<std::string>();
    if (IsBuiltinAction(name)) {
      builtin = name;
    } else if (native_.count(name) == 0) {
      problems_.Add(action_path, "unknown action '" + name + "'");
    }
  }
  static const json kNoParams = json::object();
  const json* params = Find(spec, "params");
  const std::string params_path = JoinKey(path, "params");
  if (params == nullptr || problems_.Object(*params, params_path)) {
    const json& checked = params ? *params : kNoParams;
    if (!builtin.empty()) {
      definition_internal::CheckBuiltinParams(builtin, checked, params_path,
                                              &problems_);
    }
    CheckTemplates(checked, params_path, step, compensation);
  }
  const std::string retry_path = JoinKey(path, "retry");
  if (const json* retry = Find(spec, "retry");
      retry != nullptr && problems_.Object(*retry, retry_path)) {
    CheckRetry(*retry, retry_path);
  }
  if (const json* timeout = Find(spec, "timeout_ms")) {
    problems_.Integer(*timeout, JoinKey(path, "timeout_ms"), 1, kMaxDurationMs);
  }
}

void Validator::CheckRetry(const json& retry, const std::string& path) {
  problems_.UnknownKeys(retry, path,
                        {"max_attempts", "initial_backoff_ms", "multiplier",
                         "max_backoff_ms", "jitter", "non_retryable"});
  const RetryPolicy defaults;
  if (const json* n = Find(retry, "max_attempts")) {
    problems_.Integer(*n, JoinKey(path, "max_attempts"), 1, 1000);
  }
  std::optional<uint64_t> initial = defaults.initial_backoff_ms;
  const json* initial_json = Find(retry, "initial_backoff_ms");
  if (initial_json != nullptr) {
    initial = problems_.Integer(
        *initial_json, JoinKey(path, "initial_backoff_ms"), 0, kMaxDurationMs);
  }
  if (const json* m = Find(retry, "multiplier")) {
    problems_.Number(*m, JoinKey(path, "multiplier"), 1.0);
  }
  if (const json* max_json = Find(retry, "max_backoff_ms")) {
    const std::string max_path = JoinKey(path, "max_backoff_ms");
    const std::optional<uint64_t> max =
        problems_.Integer(*max_json, max_path, 0, kMaxDurationMs);
    if (initial && max && *max < *initial) {
      problems_.Add(max_path, "must be >= initial_backoff_ms (" +
                                  std::to_string(*initial) + ")");
    }
  } else if (initial && *initial > defaults.max_backoff_ms) {
    problems_.Add(JoinKey(path, "initial_backoff_ms"),
                  "must be <= max_backoff_ms (" +
                      std::to_string(defaults.max_backoff_ms) + " by default)");
  }
  if (const json* jitter = Find(retry, "jitter")) {
    problems_.Number(*jitter, JoinKey(path, "jitter"), 0.0, 1.0);
  }
  if (const json* kinds = Find(retry, "non_retryable")) {
    CheckNonRetryable(*kinds, JoinKey(path, "non_retryable"));
  }
}

void Validator::CheckNonRetryable(const json& kinds, const std::string& path) {
  if (!kinds.is_array()) {
    problems_.Add(path, "must be an array of strings");
    return;
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    const std::string item = JoinIndex(path, i);
    if (problems_.String(kinds[i], item) &&
        kinds[i].get<std::string>().empty()) {
      problems_.Add(item, "must not be empty");
    }
  }
}

// Template syntax of every string below `value`, and the steps they name.
void Validator::CheckTemplates(const json& value, const std::string& path,
                               size_t step, bool compensation) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      CheckTemplates(child, JoinKey(path, key), step, compensation);
    }
    return;
  }
  if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      CheckTemplates(value[i], JoinIndex(path, i), step, compensation);
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
      CheckStepRef(ref, path, step, compensation);
    }
  }
}

// A step's params see the outputs of earlier steps only; its compensation
// runs after the step itself, so it may also see the step's own output.
void Validator::CheckStepRef(const TemplateRef& ref, const std::string& path,
                             size_t step, bool compensation) {
  const auto it = first_index_.find(ref.step);
  if (it == first_index_.end()) {
    problems_.Add(
        path, StepRefText(ref) + " refers to unknown step '" + ref.step + "'");
    return;
  }
  const bool runs_before =
      it->second < step || (compensation && it->second == step);
  if (!runs_before) {
    problems_.Add(path, StepRefText(ref) + " refers to step '" + ref.step +
                            "', which does not run before this " +
                            (compensation ? "compensation" : "step"));
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
  action.retry = ParseRetry(Find(spec, "retry"));
  if (const json* timeout = Find(spec, "timeout_ms")) {
    action.timeout_ms = timeout->get<uint64_t>();
  }
  return action;
}

StepSpec ParseStep(const json& doc) {
  StepSpec step;
  step.name = doc.at("name").get<std::string>();
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
  for (const json& step : doc.at("steps")) def.steps.push_back(ParseStep(step));
  return def;
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
  return action == "noop" || action == "echo" || action == "fail" ||
         action == "sleep" || action == "exec" || action == "http";
}

}  // namespace cde
