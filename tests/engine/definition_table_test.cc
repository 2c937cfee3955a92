// The definition table (engine/definition_table.h) is both the validator
// and the JSON Schema that clients get: every rule it holds, at every
// place the language uses it, is a refusal of the validator at that path,
// and what only code checks is refused too. The JSON Schema side of the
// same cases is checked with ajv (tests/e2e/definition_schema_check.mjs).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "engine/definition.h"
#include "tests/engine/definition_cases.h"

namespace cde {
namespace {

using nlohmann::json;

TEST(DefinitionTableTest, TheCompleteDefinitionIsValid) {
  EXPECT_TRUE(ValidateDefinition(testing::CompleteDefinition(), {}).empty());
}

TEST(DefinitionTableTest, EveryRuleOfTheTableIsARefusalAtItsPath) {
  const std::vector<testing::DefinitionCase> cases = testing::DefinitionCases();
  std::set<std::string> rules;
  for (const testing::DefinitionCase& c : cases) {
    rules.insert(c.rule);
    const std::vector<DefinitionError> errors =
        ValidateDefinition(c.definition, {});
    if (!c.refused) {
      EXPECT_TRUE(errors.empty())
          << c.rule << ": refused: " << errors.front().ToString();
      continue;
    }
    const bool at_path =
        std::any_of(errors.begin(), errors.end(),
                    [&](const DefinitionError& e) { return e.path == c.path; });
    std::string all;
    for (const DefinitionError& e : errors) all += e.ToString() + "; ";
    EXPECT_TRUE(at_path) << c.rule << ": no error at '" << c.path
                         << "', got: " << all;
  }
  // The walk reaches the nested parts of the language: a few of its rules.
  for (const char* rule :
       {"version: maximum", "steps: maxItems", "steps[0].retry.jitter: maximum",
        "steps[0].compensate.retry.non_retryable[0]: minLength",
        "steps[3].params.duration_ms: params required",
        "steps[4].params.env: key pattern", "steps[5].params.url: pattern",
        "steps[5].params.method: one of", "dlq.auto_replay.after_ms: required",
        "steps[2].params.fail_attempts: a whole template",
        "duplicate step name"}) {
    EXPECT_EQ(rules.count(rule), 1u) << rule;
  }
}

TEST(DefinitionTableTest, TheSchemaNamesTheNativeActions) {
  const json schema = DefinitionJsonSchema({"charge-card"});
  const json& action =
      schema["properties"]["steps"]["items"]["properties"]["action"];
  const auto names = action["enum"].get<std::vector<std::string>>();
  EXPECT_EQ(names, (std::vector<std::string>{"noop", "echo", "fail", "sleep",
                                             "exec", "http", "charge-card"}));
}

}  // namespace
}  // namespace cde
