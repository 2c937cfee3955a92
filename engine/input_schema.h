// The JSON Schema subset that `input_schema` may use, and validation of a
// saga's input against it (at start, before anything is logged).
//
// Keywords: type (string or array of: object, array, string, number,
// integer, boolean, null), properties, required, additionalProperties
// (boolean), items (one schema), enum, const, minimum, maximum,
// exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern
// (RE2 syntax, matched in linear time), minItems, maxItems, plus the
// annotations title, description, default, examples and $schema, which are
// ignored. Any other keyword is an error at registration: a misspelt "requried"
// must not silently accept every input.
#ifndef CDE_ENGINE_INPUT_SCHEMA_H_
#define CDE_ENGINE_INPUT_SCHEMA_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/status.h"

namespace cde {

// The keywords of the subset, annotations included.
const std::vector<std::string>& InputSchemaKeywords();

// Problems with the schema itself, each "path: message" where path starts
// with `where` (e.g. "input_schema.properties.qty.minimum: must be a
// number"). Empty if the schema is usable.
std::vector<std::string> CheckInputSchema(const nlohmann::json& schema,
                                          const std::string& where);

// OK if `input` satisfies `schema` (which passed CheckInputSchema);
// otherwise InvalidArgument listing each violation with its path below
// "input" ("input.qty: must be >= 1; input: missing required field 'sku'").
Status ValidateInput(const nlohmann::json& schema, const nlohmann::json& input);

// An input that `schema` (which passed CheckInputSchema; null: none)
// accepts, built from its annotations and bounds: for each required
// property its `examples`, `default`, `const` or first `enum` value, else
// the smallest value its type and bounds allow. Null if what can be built
// does not validate (a pattern, say, that no such value matches): an agent
// is shown no example rather than a wrong one.
nlohmann::json GenerateExampleInput(const nlohmann::json& schema);

}  // namespace cde

#endif  // CDE_ENGINE_INPUT_SCHEMA_H_
