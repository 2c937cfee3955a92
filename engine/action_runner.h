// ActionRunner: runs one attempt's action once the engine has rendered its
// params: the built-ins that need no I/O (noop, echo, fail), `exec` and
// `http` on the loop (the sandboxed exec and the client destination policy
// for definitions that clients registered), and the native actions an
// embedding program registered by name. It owns the exec and http actions
// and their handles.
//
// Thread safety: loop thread only; `done` may be called from any thread (a
// native action's).
#ifndef CDE_ENGINE_ACTION_RUNNER_H_
#define CDE_ENGINE_ACTION_RUNNER_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "engine/actions.h"
#include "engine/async_action.h"
#include "engine/definition_registry.h"
#include "engine/destination_policy.h"

namespace cde {

// An attempt under way whose action can be aborted (exec, http).
struct RunningAction {
  AsyncAction* io = nullptr;  // nullptr: nothing to abort
  uint64_t handle = 0;
};

class ActionRunner {
 public:
  // REQUIRES: `loop` and `registry` outlive the runner.
  ActionRunner(uv_loop_t* loop, const DefinitionRegistry& registry,
               std::shared_ptr<const DestinationPolicy> destinations,
               ExecSandbox client_sandbox);

  // Runs `action` for `request` (params rendered). `client`: its definition
  // was registered by a client. `done` gets the result, exactly once unless
  // the attempt is aborted first; an action that does not exist here fails
  // with kind `unknown_action`.
  RunningAction Run(const std::string& action, const AttemptRequest& request,
                    bool client, ActionDone done);
  // Kills the process or aborts the transfer of `running` (its timeout
  // passed, its saga ended, the engine shuts down); a finished one is left
  // be. `running` is then empty.
  static void Abort(RunningAction& running);
  // Aborts everything and closes every handle; each close calls a copy of
  // `closed`.
  void Close(const std::function<void()>& closed);

 private:
  const DefinitionRegistry& registry_;
  std::unique_ptr<AsyncAction> exec_;              // operators' definitions
  std::unique_ptr<AsyncAction> exec_for_clients_;  // sandboxed
  std::unique_ptr<AsyncAction> http_;
  std::unique_ptr<AsyncAction> http_for_clients_;
};

}  // namespace cde

#endif  // CDE_ENGINE_ACTION_RUNNER_H_
