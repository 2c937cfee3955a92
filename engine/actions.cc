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
    // Registration checked kind and error are strings, but a whole-string
    // template may render them to any type: a `params` failure then, as the
    // other built-ins report rendered params of the wrong type.
    const auto kind = params.find("kind");
    const auto error = params.find("error");
    for (const auto& [it, name] : {std::pair{kind, "kind"}, {error, "error"}}) {
      if (it != params.end() && !it->is_string()) {
        done(ActionResult::Failure("params", std::string(name) +
                                                 " must be a string, got " +
                                                 std::string(it->type_name())));
        return true;
      }
    }
    done(ActionResult::Failure(
        kind == params.end() ? "failed" : kind->get<std::string>(),
        error == params.end() ? "failed on purpose (attempt " +
                                    std::to_string(request.attempt) + ")"
                              : error->get<std::string>()));
    return true;
  }
  return false;
}

}  // namespace cde
