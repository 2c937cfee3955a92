#include "engine/action_policy.h"

#include <algorithm>
#include <optional>

namespace cde {
namespace {

using nlohmann::json;

constexpr const char* kExecOff =
    "exec is not allowed in definitions registered by clients "
    "(actions.exec.clients is off)";

bool IsTemplated(const std::string& s) {
  return s.find("${") != std::string::npos;
}

// What a client's exec params may not do, as {path below params, message};
// nullopt if nothing. With `rendered` false (at registration), templated
// values are left for the attempt, when they are rendered.
std::optional<DefinitionError> ExecProblem(const json& params,
                                           const ExecPolicy& policy,
                                           bool rendered) {
  if (!params.is_object()) return std::nullopt;  // the action reports it
  if (auto argv = params.find("argv"); argv != params.end() &&
                                       argv->is_array() && !argv->empty() &&
                                       (*argv)[0].is_string()) {
    const std::string& program = (*argv)[0].get_ref<const std::string&>();
    if ((rendered || !IsTemplated(program)) &&
        std::find(policy.allow.begin(), policy.allow.end(), program) ==
            policy.allow.end()) {
      return DefinitionError{"params.argv[0]",
                             "'" + program +
                                 "' is not in actions.exec.allow, the "
                                 "executables client definitions may run"};
    }
  }
  if (params.contains("cwd")) {
    return DefinitionError{"params.cwd",
                           "the working directory of a client definition's "
                           "exec is actions.exec.cwd; cwd is not allowed"};
  }
  if (auto env = params.find("env"); env != params.end() && env->is_object()) {
    for (const auto& [name, value] : env->items()) {
      if (std::find(policy.params_env_allow.begin(),
                    policy.params_env_allow.end(),
                    name) == policy.params_env_allow.end()) {
        return DefinitionError{"params.env." + name,
                               "'" + name +
                                   "' is not in actions.exec.params_env_allow,"
                                   " the variables client definitions may "
                                   "set"};
      }
    }
  }
  return std::nullopt;
}

void CheckExec(const ActionSpec& spec, const std::string& path,
               const ExecPolicy& policy, std::vector<DefinitionError>* out) {
  if (!policy.clients) {
    out->push_back({path + ".action",
                    std::string(kExecOff) +
                        "; an operator can register it from the workflows "
                        "directory"});
  } else if (auto problem = ExecProblem(spec.params, policy, false)) {
    out->push_back({path + "." + problem->path, problem->message});
  }
}

// A literal URL is checked now, by its host; its addresses, and any URL a
// template builds, when an attempt connects.
void CheckHttp(const ActionSpec& spec, const std::string& path,
               const DestinationPolicy& destinations,
               std::vector<DefinitionError>* out) {
  const auto url = spec.params.find("url");
  if (url == spec.params.end() || !url->is_string()) return;
  const std::string& text = url->get_ref<const std::string&>();
  if (IsTemplated(text)) return;
  auto host = HostOfUrl(text);
  if (!host.ok()) return;  // the definition check reports a bad URL
  std::string reason;
  if (destinations.CheckHost(*host, /*client=*/true, &reason) ==
      DestinationPolicy::Verdict::kRefused) {
    out->push_back({path + ".params.url", reason});
  }
}

void CheckAction(const ActionSpec& spec, const std::string& path,
                 const ActionPolicy& policy,
                 const DestinationPolicy& destinations,
                 std::vector<DefinitionError>* out) {
  if (spec.action == "exec") CheckExec(spec, path, policy.exec, out);
  if (spec.action == "http") CheckHttp(spec, path, destinations, out);
}

}  // namespace

std::vector<DefinitionError> CheckClientDefinition(
    const WorkflowDefinition& def, const ActionPolicy& policy,
    const DestinationPolicy& destinations) {
  std::vector<DefinitionError> out;
  for (const StepSpec& step : def.steps) {
    if (step.kind != StepKind::kAction) continue;
    const std::string& path = step.where;
    CheckAction(step.run, path, policy, destinations, &out);
    if (step.compensate) {
      CheckAction(*step.compensate, path + ".compensate", policy, destinations,
                  &out);
    }
  }
  return out;
}

Status CheckClientAttempt(const ActionSpec& spec, const json& params,
                          const ActionPolicy& policy) {
  if (spec.action != "exec") return Status::OK();
  if (!policy.exec.clients) return Status::InvalidArgument(kExecOff);
  if (auto problem = ExecProblem(params, policy.exec, true)) {
    return Status::InvalidArgument(problem->ToString());
  }
  return Status::OK();
}

}  // namespace cde
