#include "engine/definition_registry.h"

#include "engine/limits.h"

namespace cde {
namespace {

using nlohmann::json;

// Definitions in the store were validated when registered; native actions
// they name may not be registered in this process (yet), so accept them.
ActionNames ActionsNamedIn(const json& doc) {
  ActionNames names;
  ForEachStepDocument(doc, [&names](const json& step) {
    if (auto a = step.find("action"); a != step.end() && a->is_string()) {
      names.insert(a->get<std::string>());
    }
    if (auto c = step.find("compensate"); c != step.end() && c->is_object()) {
      if (auto a = c->find("action"); a != c->end() && a->is_string()) {
        names.insert(a->get<std::string>());
      }
    }
  });
  return names;
}

// "<prefix>: e1; e2; ..."
Status Refusal(const std::string& prefix,
               const std::vector<DefinitionError>& errors) {
  std::string message = prefix;
  for (size_t i = 0; i < errors.size(); ++i) {
    message += (i > 0 ? "; " : "") + errors[i].ToString();
  }
  return Status::InvalidArgument(message);
}

}  // namespace

DefinitionRegistry::DefinitionRegistry(
    std::map<std::string, NativeAction> actions)
    : actions_(std::move(actions)) {}

Status DefinitionRegistry::AddAction(const std::string& name,
                                     NativeAction action) {
  if (IsBuiltinAction(name) || actions_.count(name) != 0) {
    return Status::AlreadyExists("action '" + name + "' is already registered");
  }
  actions_[name] = std::move(action);
  schema_ = nullptr;  // it names the actions
  return Status::OK();
}

const NativeAction* DefinitionRegistry::FindAction(
    const std::string& name) const {
  auto it = actions_.find(name);
  return it == actions_.end() ? nullptr : &it->second;
}

const json& DefinitionRegistry::Schema() const {
  if (schema_.is_null()) {
    ActionNames native;
    for (const auto& [name, fn] : actions_) native.insert(name);
    schema_ = DefinitionJsonSchema(native);
  }
  return schema_;
}

Status DefinitionRegistry::Load(const DefinitionRecord& record) {
  auto parsed = ParseStoredDefinition(record);
  if (!parsed.ok()) return parsed.status();
  definitions_[record.name][record.version] =
      std::make_shared<const WorkflowDefinition>(std::move(parsed).value());
  records_[{record.name, record.version}] = record;
  return Status::OK();
}

DefinitionRegistry::DefPtr DefinitionRegistry::Find(
    const std::string& name, std::optional<uint32_t> version) const {
  auto it = definitions_.find(name);
  if (it == definitions_.end() || it->second.empty()) return nullptr;
  if (!version) return it->second.rbegin()->second;
  auto v = it->second.find(*version);
  return v == it->second.end() ? nullptr : v->second;
}

std::vector<DefinitionRegistry::DefPtr> DefinitionRegistry::List() const {
  std::vector<DefPtr> out;
  for (const auto& [name, versions] : definitions_) {
    for (const auto& [v, def] : versions) out.push_back(def);
  }
  return out;
}

Result<DefinitionRegistry::Admitted> DefinitionRegistry::Admit(
    const json& doc, DefinitionOrigin origin, const RegistrationRules& rules) {
  ActionNames native;
  for (const auto& [name, fn] : actions_) native.insert(name);
  auto parsed = ParseDefinition(doc, native);
  if (!parsed.ok()) return parsed.status();
  const bool client = origin == DefinitionOrigin::kClient;
  if (auto wrong = rules.secrets.Check(*parsed, client); !wrong.empty()) {
    return Refusal("invalid workflow definition: ", wrong);
  }
  if (client) {
    const auto refused =
        CheckClientDefinition(*parsed, rules.action_policy, rules.destinations);
    if (!refused.empty()) {
      return Refusal("workflow definition refused by the action policy: ",
                     refused);
    }
  }
  Admitted admitted{parsed->name, parsed->version, std::nullopt};
  const auto key = std::make_pair(admitted.name, admitted.version);
  if (auto it = records_.find(key); it != records_.end()) {
    // The same content: a no-op, unless an operator now vouches for what
    // a client registered (then the record is written again as theirs).
    const bool adopt = origin == DefinitionOrigin::kOperator &&
                       it->second.origin == DefinitionOrigin::kClient;
    if (it->second.definition != doc) {
      return Status::AlreadyExists(
          "workflow " + admitted.name + " version " +
          std::to_string(admitted.version) +
          " is already registered with different content; versions are "
          "immutable, register it as a new version");
    }
    if (!adopt) {
      admitted.unchanged = it->second;
      return admitted;
    }
  }
  // New content only: what was registered under a larger limit (the
  // workflows directory registers again at every start) keeps working.
  CDE_RETURN_IF_ERROR(CheckJsonSize("the definition", doc,
                                    rules.definition_bytes,
                                    "limits.definition_bytes"));
  if (parsed->steps.size() > rules.definition_steps) {
    return Status::InvalidArgument(
        "invalid workflow definition: steps: " +
        std::to_string(parsed->steps.size()) +
        " steps, more than limits.definition_steps allows (" +
        std::to_string(rules.definition_steps) + ")");
  }
  for (const StepSpec& step : parsed->steps) {
    if (step.branches.size() > rules.branches) {
      return Status::InvalidArgument(
          "invalid workflow definition: " + step.where +
          ".parallel.branches: " + std::to_string(step.branches.size()) +
          " branches, more than limits.branches allows (" +
          std::to_string(rules.branches) + ")");
    }
  }
  if (!claimed_.insert(key).second) {
    return Status::Busy("workflow " + admitted.name + " version " +
                        std::to_string(admitted.version) +
                        " is being registered; retry");
  }
  return admitted;
}

void DefinitionRegistry::Release(const std::string& name, uint32_t version) {
  claimed_.erase({name, version});
}

Result<WorkflowDefinition> ParseStoredDefinition(
    const DefinitionRecord& record) {
  auto parsed =
      ParseDefinition(record.definition, ActionsNamedIn(record.definition));
  if (!parsed.ok()) {
    return parsed.status().WithContext("stored definition " + record.name +
                                       "@" + std::to_string(record.version));
  }
  parsed->origin = record.origin;
  parsed->registered_by = record.registered_by;
  return parsed;
}

}  // namespace cde
