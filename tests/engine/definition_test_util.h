// Small builders and the error list shared by the definition tests.
#ifndef CDE_TESTS_ENGINE_DEFINITION_TEST_UTIL_H_
#define CDE_TESTS_ENGINE_DEFINITION_TEST_UTIL_H_

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/definition.h"

namespace cde::test {

// What validation says of `doc`, one "path: message" per problem, in order.
inline std::vector<std::string> Errors(const nlohmann::json& doc,
                                       const ActionNames& native = {}) {
  std::vector<std::string> out;
  for (const DefinitionError& e : ValidateDefinition(doc, native)) {
    out.push_back(e.ToString());
  }
  return out;
}

// A step of the echo action.
inline nlohmann::json Step(const std::string& name,
                           nlohmann::json params = nlohmann::json::object()) {
  return {{"name", name}, {"action", "echo"}, {"params", std::move(params)}};
}

// A definition named "wf", version 1. A vector, not a json: a one-element
// braced list would be taken as that element rather than an array by some
// compilers.
inline nlohmann::json Doc(std::vector<nlohmann::json> steps) {
  return {{"name", "wf"}, {"version", 1}, {"steps", std::move(steps)}};
}

}  // namespace cde::test

#endif  // CDE_TESTS_ENGINE_DEFINITION_TEST_UTIL_H_
