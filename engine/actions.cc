#include "engine/actions.h"

namespace cde {

std::optional<ActionResult> RunSimpleBuiltin(std::string_view action,
                                             const nlohmann::json& params,
                                             uint32_t attempt) {
  if (action == "noop") return ActionResult::Success(nullptr);
  if (action == "echo") return ActionResult::Success(params);
  if (action != "fail") return std::nullopt;
  // fail_attempts: N fails the first N attempts, then succeeds; without it
  // every attempt fails.
  auto it = params.find("fail_attempts");
  const bool fails = it == params.end() || !it->is_number_integer() ||
                     attempt <= it->get<int64_t>();
  if (!fails) return ActionResult::Success({{"attempt", attempt}});
  // Registration checked kind and error are strings, but a whole-string
  // template may render them to any type: a `params` failure then, as the
  // other built-ins report rendered params of the wrong type.
  const auto kind = params.find("kind");
  const auto error = params.find("error");
  for (const auto& [it, name] : {std::pair{kind, "kind"}, {error, "error"}}) {
    if (it != params.end() && !it->is_string()) {
      return ActionResult::Failure("params", std::string(name) +
                                                 " must be a string, got " +
                                                 std::string(it->type_name()));
    }
  }
  return ActionResult::Failure(
      kind == params.end() ? "failed" : kind->get<std::string>(),
      error == params.end()
          ? "failed on purpose (attempt " + std::to_string(attempt) + ")"
          : error->get<std::string>());
}

}  // namespace cde
