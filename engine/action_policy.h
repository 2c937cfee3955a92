// ActionPolicy: which actions a definition registered by a client (over MCP
// or HTTP, on behalf of an agent that may be prompt-injected) may use. An
// operator's definitions (the --workflows directory, cde-admin, the C++
// API) are trusted, as are native actions: their authors run the server.
//
// The policy applies twice: at registration, to what the definition says,
// and when an attempt runs, to its rendered params, since a template can
// build an argv from a saga's input.
#ifndef CDE_ENGINE_ACTION_POLICY_H_
#define CDE_ENGINE_ACTION_POLICY_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/definition.h"
#include "engine/destination_policy.h"
#include "storage/status.h"

namespace cde {

struct ExecPolicy {
  // Whether client definitions may have `exec` steps at all. Off: any
  // client could otherwise run a shell as the server's user.
  bool clients = false;
  // When clients may: the executables (absolute paths) their argv[0] may
  // name. Empty: none, so turning `clients` on alone runs nothing.
  std::vector<std::string> allow;

  friend bool operator==(const ExecPolicy&, const ExecPolicy&) = default;
};

struct ActionPolicy {
  ExecPolicy exec;
  // Where `http` may connect (destination_policy.h): for every definition,
  // with stricter built-in rules for a client's.
  HttpPolicy http;

  friend bool operator==(const ActionPolicy&, const ActionPolicy&) = default;
};

// The error kind of an attempt the policy refuses. Never retried: the same
// params would be refused again.
inline constexpr const char* kPolicyErrorKind = "policy";

// What `def` (registered by a client) may not do under `policy` and
// `destinations` (compiled from policy.http), each with the path of the
// step and the rule ("steps[1].action: ..."). Templated values are left to
// the attempt: CheckClientAttempt for exec, the http action for URLs.
std::vector<DefinitionError> CheckClientDefinition(
    const WorkflowDefinition& def, const ActionPolicy& policy,
    const DestinationPolicy& destinations);

// OK if an attempt of `spec` with the rendered `params`, in a client
// definition, may run; otherwise InvalidArgument naming the rule (the
// attempt then fails with kPolicyErrorKind).
Status CheckClientAttempt(const ActionSpec& spec, const nlohmann::json& params,
                          const ActionPolicy& policy);

}  // namespace cde

#endif  // CDE_ENGINE_ACTION_POLICY_H_
