#include "engine/actions.h"

namespace cde {

bool RunSimpleBuiltin(const std::string& action, const AttemptRequest& request,
                      const ActionDone& done) {
  const nlohmann::json& params = request.params;
  if (action == "noop") {
    done(ActionResult::Success(nullptr));
    return true;
  }
  if (action == "echo") {
    done(ActionResult::Success(params));
    return true;
  }
  if (action == "fail") {
    // fail_attempts: N fails the first N attempts, then succeeds; without it
    // every attempt fails.
    auto it = params.find("fail_attempts");
    const bool fails = it == params.end() || !it->is_number_integer() ||
                       request.attempt <= it->get<int64_t>();
    if (!fails) {
      done(ActionResult::Success({{"attempt", request.attempt}}));
      return true;
    }
    std::string kind = params.value("kind", std::string("failed"));
    std::string message =
        params.value("error", "failed on purpose (attempt " +
                                  std::to_string(request.attempt) + ")");
    done(ActionResult::Failure(std::move(kind), std::move(message)));
    return true;
  }
  return false;
}

}  // namespace cde
