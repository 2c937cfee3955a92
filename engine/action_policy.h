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

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/definition.h"
#include "engine/destination_policy.h"
#include "storage/status.h"

namespace cde {

// Resource limits (setrlimit) of a client definition's child; 0 = none.
struct ExecLimits {
  uint64_t cpu_seconds = 60;         // then SIGXCPU, SIGKILL a second later
  uint64_t address_space_mb = 4096;  // allocations beyond it fail
  uint64_t file_size_mb = 64;        // a larger write gets SIGXFSZ
  // Processes and threads of the user the child runs as, all of them
  // (RLIMIT_NPROC counts per user, and not for root).
  uint64_t processes = 256;

  bool any() const {
    return cpu_seconds || address_space_mb || file_size_mb || processes;
  }
  friend bool operator==(const ExecLimits&, const ExecLimits&) = default;
};

struct ExecPolicy {
  // Whether client definitions may have `exec` steps at all. Off: any
  // client could otherwise run a shell as the server's user.
  bool clients = false;
  // When clients may: the executables (absolute paths) their argv[0] may
  // name. Empty: none, so turning `clients` on alone runs nothing.
  std::vector<std::string> allow;
  // How their children run (the sandbox; docs/security.md). Operators'
  // children run as the server's own do: their environment, user and
  // limits.
  //
  // The variables of the server's environment a child gets; the rest is
  // cleared, so the server's credentials stay with the server.
  std::vector<std::string> env_allow = {"PATH", "LANG", "TZ"};
  // The variables a client definition's `env` param may set. Empty: none.
  // A list, not a list of exceptions: a program reads more variables than
  // anyone can enumerate (BASH_ENV, PERL5OPT, NODE_OPTIONS, GCONV_PATH run
  // code), and the operator who allowed it knows the ones it needs.
  std::vector<std::string> params_env_allow;
  // The working directory (absolute). A client definition's `cwd` param is
  // refused.
  std::string cwd = "/";
  // Whom the children run as when the server runs as root: never root.
  std::string user = "nobody";
  ExecLimits limits;

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

// The error kind of an attempt whose output is larger than
// EngineLimits::output_bytes. Never retried either: the same call would
// most likely answer as much again.
inline constexpr const char* kLimitErrorKind = "limit";

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
