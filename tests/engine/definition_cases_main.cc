// Prints the definition language's JSON Schema and the definition cases
// (definition_cases.h) as one JSON document, for
// tests/e2e/definition_schema_check.mjs.
#include <iostream>

#include "engine/definition.h"
#include "tests/engine/definition_cases.h"

int main() {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : cde::testing::DefinitionCases()) {
    cases.push_back(cde::testing::ToJson(c));
  }
  std::cout << nlohmann::json{{"schema", cde::DefinitionJsonSchema({})},
                              {"cases", std::move(cases)}}
            << "\n";
  return 0;
}
