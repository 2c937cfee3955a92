// Definitions that break one rule each, made by walking the definition
// table (engine/definition_table.h) over a definition that uses every key,
// plus the rules the table leaves to code. The validator must refuse each
// at its path (definition_table_test.cc), and JSON Schema validators must
// agree with `schema` (tests/e2e/definition_schema_check.mjs, with ajv).
#ifndef CDE_TESTS_ENGINE_DEFINITION_CASES_H_
#define CDE_TESTS_ENGINE_DEFINITION_CASES_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cde::testing {

struct DefinitionCase {
  std::string rule;  // "steps[0].retry.max_attempts: maximum"
  std::string path;  // where the validator reports it
  nlohmann::json definition;
  bool refused = true;         // by the validator
  bool schema_refuses = true;  // by the JSON Schema (false: it cannot say)
};

// A valid definition that uses every key of the language and every
// built-in action.
nlohmann::json CompleteDefinition();

// One case per rule of the table at each place CompleteDefinition uses it,
// then the rules only code can check.
std::vector<DefinitionCase> DefinitionCases();

nlohmann::json ToJson(const DefinitionCase& c);

}  // namespace cde::testing

#endif  // CDE_TESTS_ENGINE_DEFINITION_CASES_H_
