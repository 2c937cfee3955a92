// Input schemas: which schemas are accepted at registration (and the exact
// complaint about each bad one), and how an input is checked against a
// schema: every keyword accepted and violated, nested paths, several
// violations reported together.
#include "engine/input_schema.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cde {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

// ---- CheckInputSchema -------------------------------------------------------

TEST(CheckInputSchemaTest, AcceptsEveryKeywordOfTheSubset) {
  const json schema = json::parse(R"({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Trip", "description": "A trip", "default": {}, "examples": [{}],
    "type": "object",
    "required": ["trip_id", "items"],
    "additionalProperties": false,
    "properties": {
      "trip_id": {"type": "string", "minLength": 3, "maxLength": 32,
                  "pattern": "^T-[0-9]+$"},
      "nights": {"type": ["integer", "null"], "minimum": 1, "maximum": 30},
      "budget": {"type": "number", "exclusiveMinimum": 0,
                 "exclusiveMaximum": 10000.5},
      "class": {"enum": ["economy", "business"]},
      "version": {"const": 2},
      "paid": {"type": "boolean"},
      "items": {"type": "array", "minItems": 1, "maxItems": 10,
                "items": {"type": "object", "properties": {
                  "sku": {"type": "string"}}}}
    }
  })");
  EXPECT_EQ(CheckInputSchema(schema, "input_schema"), Strings{});
  EXPECT_EQ(CheckInputSchema(json::object(), "input_schema"), Strings{});
}

struct BadSchema {
  const char* schema;
  Strings errors;
};

TEST(CheckInputSchemaTest, ReportsEachProblemWithItsPath) {
  const std::string kTypes =
      "must be one of object, array, string, number, integer, boolean, null";
  const std::vector<BadSchema> cases = {
      {R"([])", {"input_schema: must be an object"}},
      {R"(true)", {"input_schema: must be an object"}},
      {R"({"requried": ["a"]})", {"input_schema: unknown keyword 'requried'"}},
      {R"({"oneOf": []})", {"input_schema: unknown keyword 'oneOf'"}},
      {R"({"type": "float"})", {"input_schema.type: " + kTypes}},
      {R"({"type": ["string", 3]})", {"input_schema.type[1]: " + kTypes}},
      {R"({"type": []})",
       {"input_schema.type: must be a type name or a non-empty array of type "
        "names"}},
      {R"({"type": 1})",
       {"input_schema.type: must be a type name or a non-empty array of type "
        "names"}},
      {R"({"properties": []})", {"input_schema.properties: must be an object"}},
      {R"({"properties": {"qty": {"minimum": "1"}}})",
       {"input_schema.properties.qty.minimum: must be a number"}},
      {R"({"properties": {"a": {"properties": {"b": 5}}}})",
       {"input_schema.properties.a.properties.b: must be an object"}},
      {R"({"items": {"type": "strin"}})",
       {"input_schema.items.type: " + kTypes}},
      {R"({"items": [{"type": "string"}]})",
       {"input_schema.items: must be an object"}},
      {R"({"required": "sku"})",
       {"input_schema.required: must be an array of field names"}},
      {R"({"required": ["sku", 1]})",
       {"input_schema.required[1]: must be a string"}},
      {R"({"additionalProperties": {}})",
       {"input_schema.additionalProperties: must be a boolean"}},
      {R"({"enum": []})", {"input_schema.enum: must be a non-empty array"}},
      {R"({"enum": "red"})", {"input_schema.enum: must be a non-empty array"}},
      {R"({"maximum": null})", {"input_schema.maximum: must be a number"}},
      {R"({"exclusiveMinimum": true})",
       {"input_schema.exclusiveMinimum: must be a number"}},
      {R"({"exclusiveMaximum": "9"})",
       {"input_schema.exclusiveMaximum: must be a number"}},
      {R"({"minLength": -1})",
       {"input_schema.minLength: must be a non-negative integer"}},
      {R"({"maxLength": 1.5})",
       {"input_schema.maxLength: must be a non-negative integer"}},
      {R"({"minItems": "1"})",
       {"input_schema.minItems: must be a non-negative integer"}},
      {R"({"maxItems": -3})",
       {"input_schema.maxItems: must be a non-negative integer"}},
      {R"({"pattern": 5})", {"input_schema.pattern: must be a string"}},
      {R"({"pattern": "(ab"})",
       {"input_schema.pattern: is not a valid regular expression: unbalanced "
        "parentheses"}},
      {R"({"pattern": "a{3,1}"})",
       {"input_schema.pattern: is not a valid regular expression: invalid {} "
        "repetition"}},
      {R"({"pattern": "[z-a]"})",
       {"input_schema.pattern: is not a valid regular expression: invalid "
        "character range"}},
      // Every problem at once, keywords in key order.
      {R"({"type": "obj", "required": [1], "maxLength": "x", "foo": 1})",
       {"input_schema: unknown keyword 'foo'",
        "input_schema.maxLength: must be a non-negative integer",
        "input_schema.required[0]: must be a string",
        "input_schema.type: " + kTypes}},
  };
  for (const BadSchema& c : cases) {
    EXPECT_EQ(CheckInputSchema(json::parse(c.schema), "input_schema"), c.errors)
        << c.schema;
  }
}

TEST(CheckInputSchemaTest, EmptyWhereLeavesPathsRelative) {
  EXPECT_EQ(CheckInputSchema(json::parse(R"({"x": 1, "type": "no"})"), ""),
            (Strings{"type: must be one of object, array, string, number, "
                     "integer, boolean, null",
                     "unknown keyword 'x'"}));
}

// ---- ValidateInput ----------------------------------------------------------

// "OK", or the violations ValidateInput reports.
std::string Check(const char* schema, const char* input) {
  const Status s = ValidateInput(json::parse(schema), json::parse(input));
  if (s.ok()) return "OK";
  EXPECT_TRUE(s.IsInvalidArgument());
  return s.message();
}

struct InputCase {
  const char* schema;
  const char* input;
  const char* result;  // "OK" or the exact message
};

void RunCases(const std::vector<InputCase>& cases) {
  for (const InputCase& c : cases) {
    EXPECT_EQ(Check(c.schema, c.input), c.result)
        << "schema " << c.schema << " input " << c.input;
  }
}

TEST(ValidateInputTest, NoSchemaAcceptsAnything) {
  EXPECT_TRUE(ValidateInput(json(), json::parse(R"({"a": [1]})")).ok());
  EXPECT_TRUE(ValidateInput(json(), json()).ok());
  EXPECT_TRUE(ValidateInput(json::object(), json(42)).ok());
}

TEST(ValidateInputTest, TypeKeyword) {
  RunCases({
      {R"({"type": "object"})", R"({})", "OK"},
      {R"({"type": "object"})", R"([])", "input: must be of type object"},
      {R"({"type": "array"})", R"([1])", "OK"},
      {R"({"type": "array"})", R"({})", "input: must be of type array"},
      {R"({"type": "string"})", R"("x")", "OK"},
      {R"({"type": "string"})", R"(1)", "input: must be of type string"},
      {R"({"type": "number"})", R"(1.5)", "OK"},
      {R"({"type": "number"})", R"(-3)", "OK"},
      {R"({"type": "number"})", R"("1")", "input: must be of type number"},
      {R"({"type": "integer"})", R"(7)", "OK"},
      {R"({"type": "integer"})", R"(-7)", "OK"},
      {R"({"type": "integer"})", R"(2.0)", "OK"},
      {R"({"type": "integer"})", R"(2.5)", "input: must be of type integer"},
      {R"({"type": "integer"})", R"(true)", "input: must be of type integer"},
      {R"({"type": "boolean"})", R"(false)", "OK"},
      {R"({"type": "boolean"})", R"(0)", "input: must be of type boolean"},
      {R"({"type": "null"})", R"(null)", "OK"},
      {R"({"type": "null"})", R"("")", "input: must be of type null"},
      {R"({"type": ["string", "null"]})", R"(null)", "OK"},
      {R"({"type": ["string", "null"]})", R"(3)",
       "input: must be of type string or null"},
  });
}

TEST(ValidateInputTest, EnumAndConst) {
  RunCases({
      {R"({"enum": ["red", "blue"]})", R"("red")", "OK"},
      {R"({"enum": ["red", "blue"]})", R"("green")",
       R"(input: must be one of ["red","blue"])"},
      {R"({"enum": [1, null, {"a": 1}]})", R"({"a": 1})", "OK"},
      {R"({"enum": [1, 2]})", R"(1.0)", "OK"},
      {R"({"const": "v2"})", R"("v2")", "OK"},
      {R"({"const": "v2"})", R"("v3")", R"(input: must be equal to "v2")"},
      {R"({"const": [1, 2]})", R"([2, 1])", "input: must be equal to [1,2]"},
  });
}

TEST(ValidateInputTest, NumericBounds) {
  RunCases({
      {R"({"minimum": 1})", "1", "OK"},
      {R"({"minimum": 1})", "0", "input: must be >= 1"},
      {R"({"minimum": 1})", "0.5", "input: must be >= 1"},
      {R"({"minimum": 0.5})", "0.25", "input: must be >= 0.5"},
      {R"({"maximum": 10})", "10", "OK"},
      {R"({"maximum": 10})", "10.01", "input: must be <= 10"},
      {R"({"exclusiveMinimum": 0})", "0.001", "OK"},
      {R"({"exclusiveMinimum": 0})", "0", "input: must be > 0"},
      {R"({"exclusiveMaximum": 100})", "99", "OK"},
      {R"({"exclusiveMaximum": 100})", "100", "input: must be < 100"},
      {R"({"minimum": -5})", "-6", "input: must be >= -5"},
      {R"({"maximum": 18446744073709551615})", "18446744073709551615", "OK"},
      // Bounds constrain numbers only.
      {R"({"minimum": 1})", R"("0")", "OK"},
  });
}

TEST(ValidateInputTest, StringLengthCountsCodePointsNotBytes) {
  RunCases({
      {R"({"minLength": 2})", R"("ab")", "OK"},
      {R"({"minLength": 2})", R"("a")",
       "input: must be at least 2 characters long"},
      {R"({"minLength": 1})", R"("")",
       "input: must be at least 1 character long"},
      {R"({"maxLength": 3})", R"("abcd")",
       "input: must be at most 3 characters long"},
      // "héllo" is 6 bytes, 5 code points; "日本" is 6 bytes, 2 code points.
      {R"({"maxLength": 5})", R"("h\u00e9llo")", "OK"},
      {R"({"maxLength": 2})", R"("\u65e5\u672c")", "OK"},
      {R"({"minLength": 3})", R"("\u65e5\u672c")",
       "input: must be at least 3 characters long"},
      // An emoji outside the BMP is one code point (a surrogate pair in JSON).
      {R"({"maxLength": 1})", R"("\ud83d\ude00")", "OK"},
  });
}

TEST(ValidateInputTest, PatternSearchesUnlessAnchored) {
  RunCases({
      {R"({"pattern": "[0-9]+"})", R"("trip-42")", "OK"},
      {R"({"pattern": "^[0-9]+$"})", R"("trip-42")",
       "input: must match pattern '^[0-9]+$'"},
      {R"({"pattern": "^T-\\d{3}$"})", R"("T-123")", "OK"},
      {R"({"pattern": "^T-\\d{3}$"})", R"("T-1234")",
       R"(input: must match pattern '^T-\d{3}$')"},
  });
}

// Compiled patterns are cached (the last 64 used): more patterns than that,
// each used again after the others pushed it out, still match as their own.
TEST(ValidateInputTest, PatternsMatchAsTheirOwnBeyondTheCache) {
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 150; ++i) {
      const std::string n = std::to_string(i);
      const nlohmann::json schema = {{"pattern", "^id-" + n + "$"}};
      EXPECT_TRUE(ValidateInput(schema, "id-" + n).ok()) << n;
      EXPECT_FALSE(ValidateInput(schema, "id-" + n + "0").ok()) << n;
    }
  }
}

TEST(GenerateExampleInputTest, BuildsTheSmallestInputTheSchemaAccepts) {
  const nlohmann::json schema = nlohmann::json::parse(R"({
    "type": "object", "required": ["trip", "seats", "class", "when", "tags"],
    "properties": {
      "trip": {"type": "string", "minLength": 2},
      "seats": {"type": "integer", "exclusiveMinimum": 0, "maximum": 9},
      "class": {"enum": ["economy", "business"]},
      "when": {"type": "object", "required": ["day"],
               "properties": {"day": {"type": "string",
                                      "examples": ["2026-12-24"]}}},
      "tags": {"type": "array", "minItems": 1, "items": {"type": "boolean"}},
      "note": {"type": "string"}}})");
  EXPECT_EQ(GenerateExampleInput(schema), nlohmann::json::parse(R"({
    "trip": "xx", "seats": 1, "class": "economy",
    "when": {"day": "2026-12-24"}, "tags": [false]})"));
  EXPECT_EQ(GenerateExampleInput(nullptr), nlohmann::json::object());
  // What cannot be built to match is not shown at all.
  EXPECT_TRUE(GenerateExampleInput(
                  {{"type", "object"},
                   {"required", {"id"}},
                   {"properties",
                    {{"id", {{"type", "string"}, {"pattern", "^T-[0-9]+$"}}}}}})
                  .is_null());
}

TEST(ValidateInputTest, PatternMatchesLongStringsWithoutRecursing) {
  // std::regex recursed per character: this overflowed its stack.
  const json schema = json::parse(R"({"pattern": "^(a|b)*$"})");
  EXPECT_TRUE(ValidateInput(schema, json(std::string(1000000, 'a'))).ok());
  EXPECT_EQ(
      ValidateInput(schema, json(std::string(1000000, 'a') + "c")).message(),
      "input: must match pattern '^(a|b)*$'");
}

TEST(ValidateInputTest, PatternsThatBacktrackExponentiallyMatchInLinearTime) {
  // A backtracking engine takes 2^n steps on n a's and a b: at 30, minutes
  // on the loop thread; at 100,000, forever. RE2 takes one pass.
  for (const char* evil : {"^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "(.*a){20}"}) {
    const json schema = {{"pattern", evil}};
    ASSERT_TRUE(CheckInputSchema(schema, "input_schema").empty()) << evil;
    for (size_t n : {30u, 100000u}) {
      const Status s = ValidateInput(schema, json(std::string(n, 'a') + "b"));
      if (std::string(evil) != "(.*a){20}") {
        EXPECT_EQ(s.message(),
                  std::string("input: must match pattern '") + evil + "'")
            << evil << " " << n;
      }
    }
  }
}

TEST(ValidateInputTest, PatternsRe2CannotMatchInLinearTimeAreRefused) {
  auto problems = [](const char* pattern) {
    return CheckInputSchema({{"pattern", pattern}}, "input_schema");
  };
  using Problems = std::vector<std::string>;
  EXPECT_EQ(problems("(a)\\1"),
            Problems{"input_schema.pattern: is not a valid regular "
                     "expression: invalid escape"});
  EXPECT_EQ(problems("a(?=b)"),
            Problems{"input_schema.pattern: is not a valid regular "
                     "expression: unsupported construct '(?=' (backreferences "
                     "and lookaround cannot be matched in linear time)"});
  EXPECT_EQ(problems("(\\w{50}){50}"),
            Problems{"input_schema.pattern: is not a valid regular "
                     "expression: invalid {} repetition"});
  EXPECT_EQ(problems("\\pL{1000}"),
            Problems{"input_schema.pattern: is not a valid regular "
                     "expression: too complex"});
}

TEST(ValidateInputTest, ArrayBoundsAndItems) {
  RunCases({
      {R"({"minItems": 1})", "[0]", "OK"},
      {R"({"minItems": 1})", "[]", "input: must have at least 1 item"},
      {R"({"minItems": 2})", "[0]", "input: must have at least 2 items"},
      {R"({"maxItems": 2})", "[1, 2, 3]", "input: must have at most 2 items"},
      {R"({"items": {"type": "string"}})", R"(["a", "b"])", "OK"},
      {R"({"items": {"type": "string"}})", R"([1, "b", null])",
       "input[0]: must be of type string; input[2]: must be of type string"},
  });
}

TEST(ValidateInputTest, ObjectRequiredPropertiesAndAdditionalProperties) {
  RunCases({
      {R"({"required": ["sku"]})", R"({"sku": "A"})", "OK"},
      {R"({"required": ["sku", "qty"]})", R"({})",
       "input: missing required field 'sku'; input: missing required field "
       "'qty'"},
      {R"({"properties": {"qty": {"minimum": 1}}})", R"({"qty": 0})",
       "input.qty: must be >= 1"},
      {R"({"properties": {"qty": {"minimum": 1}}})", R"({"other": 0})", "OK"},
      {R"({"properties": {"a": {}}, "additionalProperties": false})",
       R"({"a": 1, "x": 2})", "input: unknown field 'x'"},
      {R"({"additionalProperties": false})", R"({})", "OK"},
      {R"({"additionalProperties": true})", R"({"x": 1})", "OK"},
  });
}

TEST(ValidateInputTest, NestedPathsNameFieldsAndIndexes) {
  const char* schema = R"({
    "type": "object",
    "properties": {
      "order": {"type": "object", "required": ["id"], "properties": {
        "items": {"type": "array", "items": {"type": "object",
          "properties": {"sku": {"type": "string"},
                         "qty": {"type": "integer", "minimum": 1}}}}}}}
  })";
  EXPECT_EQ(Check(schema, R"({"order": {"id": 1, "items": [
                               {"sku": "A", "qty": 1}]}})"),
            "OK");
  EXPECT_EQ(Check(schema, R"({"order": {"items": [
                               {"sku": "A", "qty": 1},
                               {"sku": 5, "qty": 0}]}})"),
            "input.order.items[1].qty: must be >= 1; "
            "input.order.items[1].sku: must be of type string; "
            "input.order: missing required field 'id'");
}

TEST(ValidateInputTest, ReportsEveryViolationAtOnce) {
  const char* schema = R"({
    "type": "object",
    "required": ["sku", "qty"],
    "additionalProperties": false,
    "properties": {
      "qty": {"type": "integer", "minimum": 1},
      "color": {"enum": ["red", "blue"]},
      "code": {"type": "string", "pattern": "^[A-Z]+$", "maxLength": 3}
    }
  })";
  EXPECT_EQ(Check(schema, R"({"qty": 0, "color": "green", "code": "abcd",
                              "x": true})"),
            "input.code: must be at most 3 characters long; "
            "input.code: must match pattern '^[A-Z]+$'; "
            R"(input.color: must be one of ["red","blue"]; )"
            "input.qty: must be >= 1; "
            "input: unknown field 'x'; "
            "input: missing required field 'sku'");
}

}  // namespace
}  // namespace cde
