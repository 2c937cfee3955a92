#include "engine/action_runner.h"

#include <string>
#include <utility>

namespace cde {

ActionRunner::ActionRunner(
    uv_loop_t* loop, const DefinitionRegistry& registry,
    std::shared_ptr<const DestinationPolicy> destinations,
    ExecSandbox client_sandbox)
    : registry_(registry),
      exec_(NewExecAction(loop)),
      exec_for_clients_(
          NewSandboxedExecAction(loop, std::move(client_sandbox))),
      http_(NewHttpAction(loop, destinations, /*client=*/false)),
      http_for_clients_(
          NewHttpAction(loop, std::move(destinations), /*client=*/true)) {}

RunningAction ActionRunner::Run(const std::string& action,
                                const AttemptRequest& request, bool client,
                                ActionDone done) {
  if (std::optional<ActionResult> now =
          RunSimpleBuiltin(action, request.params, request.attempt)) {
    done(std::move(*now));
    return {};
  }
  AsyncAction* io = nullptr;
  if (action == "exec") {
    io = client ? exec_for_clients_.get() : exec_.get();
  } else if (action == "http") {
    io = client ? http_for_clients_.get() : http_.get();
  }
  if (io != nullptr) return {io, io->Start(request, std::move(done))};
  const NativeAction* native = registry_.FindAction(action);
  if (native == nullptr) {
    done(ActionResult::Failure(
        "unknown_action",
        "no action '" + action + "' is registered in this process"));
    return {};
  }
  (*native)(request, std::move(done));
  return {};
}

void ActionRunner::Abort(RunningAction& running) {
  if (running.io != nullptr) running.io->Abort(running.handle);
  running = {};
}

void ActionRunner::Close(const std::function<void()>& closed) {
  exec_->Close(closed);
  exec_for_clients_->Close(closed);
  http_->Close(closed);
  http_for_clients_->Close(closed);
}

}  // namespace cde
