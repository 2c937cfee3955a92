// Actions: what a step does. The engine dispatches an attempt to its action
// and gets exactly one ActionResult back, on any thread; results are tagged
// with their attempt, so a late result of an abandoned attempt is ignored.
// Actions never write the store.
#ifndef CDE_ENGINE_ACTIONS_H_
#define CDE_ENGINE_ACTIONS_H_

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/saga.h"

namespace cde {

struct AttemptRequest {
  std::string saga_id;
  std::string workflow;
  std::string step;
  bool compensation = false;
  uint32_t attempt = 1;
  // "<saga>/<step>/<attempt>": the same for a re-run of this attempt after a
  // crash, so the receiving side can deduplicate.
  std::string idempotency_key;
  nlohmann::json params;  // rendered
  // The saga's correlation id and W3C trace id ("" = none): the http action
  // sends them as X-Correlation-ID and traceparent.
  std::string correlation_id;
  std::string trace_id;
  // The value of every configured secret. The engine redacts them from
  // what comes back, but cannot find one that an action cut in two: an
  // action that returns part of a text (a body's head, stderr's tail)
  // redacts them first (RedactText, secrets.h). Null: none.
  using Secrets = std::shared_ptr<const std::vector<std::string>>;
  Secrets secrets;
};

struct ActionResult {
  bool ok = false;
  nlohmann::json output;  // ok only
  ErrorInfo error;        // !ok only: kind decides retry (definition.h)

  static ActionResult Success(nlohmann::json output) {
    return {true, std::move(output), {}};
  }
  static ActionResult Failure(std::string kind, std::string message) {
    return {false, nullptr, {std::move(kind), std::move(message)}};
  }
};

// Completes an attempt. Call exactly once, from any thread.
using ActionDone = std::function<void(ActionResult)>;

// A native action registered by an embedding program. Called on the loop
// thread; must not block (hand long work to another thread and call `done`
// from there).
using NativeAction =
    std::function<void(const AttemptRequest& request, ActionDone done)>;

// Runs the built-in actions that need no I/O: noop, echo and fail, with
// the attempt's rendered params. nullopt if `action` is not one of them.
// (`sleep` is a durable timer that the state machine handles; `exec` and
// `http` are asynchronous I/O actions.)
std::optional<ActionResult> RunSimpleBuiltin(std::string_view action,
                                             const nlohmann::json& params,
                                             uint32_t attempt);

}  // namespace cde

#endif  // CDE_ENGINE_ACTIONS_H_
