#include "engine/action_policy.h"

#include <algorithm>

namespace cde {
namespace {

using nlohmann::json;

std::string StepPath(size_t i, bool compensation) {
  return "steps[" + std::to_string(i) + "]" +
         (compensation ? ".compensate" : "");
}

bool Allowed(const ExecPolicy& policy, const std::string& program) {
  return std::find(policy.allow.begin(), policy.allow.end(), program) !=
         policy.allow.end();
}

std::string NotAllowedProgram(const std::string& program) {
  return "'" + program +
         "' is not in actions.exec.allow, the executables client "
         "definitions may run";
}

// The problem with a client's exec step, if any; `path` names the spec.
void CheckExec(const ActionSpec& spec, const std::string& path,
               const ExecPolicy& policy, std::vector<DefinitionError>* out) {
  if (!policy.clients) {
    out->push_back(
        {path + ".action",
         "exec is not allowed in definitions registered by clients "
         "(actions.exec.clients is off); an operator can register it from "
         "the workflows directory"});
    return;
  }
  const json* argv = spec.params.is_object() && spec.params.contains("argv")
                         ? &spec.params["argv"]
                         : nullptr;
  if (argv == nullptr || !argv->is_array() || argv->empty() ||
      !(*argv)[0].is_string()) {
    return;  // the definition checks report a bad argv
  }
  const std::string& program = (*argv)[0].get_ref<const std::string&>();
  if (program.find("${") != std::string::npos) return;  // checked at run time
  if (!Allowed(policy, program)) {
    out->push_back({path + ".params.argv[0]", NotAllowedProgram(program)});
  }
}

}  // namespace

std::vector<DefinitionError> CheckClientDefinition(
    const WorkflowDefinition& def, const ActionPolicy& policy) {
  std::vector<DefinitionError> out;
  for (size_t i = 0; i < def.steps.size(); ++i) {
    const StepSpec& step = def.steps[i];
    if (step.run.action == "exec") {
      CheckExec(step.run, StepPath(i, false), policy.exec, &out);
    }
    if (step.compensate && step.compensate->action == "exec") {
      CheckExec(*step.compensate, StepPath(i, true), policy.exec, &out);
    }
  }
  return out;
}

Status CheckClientAttempt(const ActionSpec& spec, const json& params,
                          const ActionPolicy& policy) {
  if (spec.action != "exec") return Status::OK();
  if (!policy.exec.clients) {
    return Status::InvalidArgument(
        "exec is not allowed in definitions registered by clients "
        "(actions.exec.clients is off)");
  }
  const json* argv = params.is_object() && params.contains("argv")
                         ? &params["argv"]
                         : nullptr;
  if (argv == nullptr || !argv->is_array() || argv->empty() ||
      !(*argv)[0].is_string()) {
    return Status::OK();  // the exec action reports a bad argv
  }
  const std::string& program = (*argv)[0].get_ref<const std::string&>();
  if (!Allowed(policy.exec, program)) {
    return Status::InvalidArgument("params.argv[0]: " +
                                   NotAllowedProgram(program));
  }
  return Status::OK();
}

}  // namespace cde
