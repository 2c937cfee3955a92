// Internal to definition validation (definition.cc, definition_table.cc):
// the problem list that the checks fill and the small typed checks they
// share. Not an engine API.
#ifndef CDE_ENGINE_DEFINITION_CHECKS_H_
#define CDE_ENGINE_DEFINITION_CHECKS_H_

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/definition.h"
#include "engine/json_text.h"

namespace cde::definition_internal {

using ::cde::JoinIndex;  // engine/json_text.h
using ::cde::JoinKey;

// The problems found so far, in the order found. Each typed check reports
// its own problem and returns the value only when it is acceptable, so
// callers read as a list of rules.
class Problems {
 public:
  void Add(std::string path, std::string message);

  // An integer in [min, max] ("must be an integer", "must be >= 1").
  std::optional<uint64_t> Integer(
      const nlohmann::json& value, const std::string& path, uint64_t min,
      uint64_t max = std::numeric_limits<uint64_t>::max());

  // A number in [min, max].
  std::optional<double> Number(
      const nlohmann::json& value, const std::string& path, double min,
      double max = std::numeric_limits<double>::infinity());

  // Returns false after reporting "must be a string".
  bool String(const nlohmann::json& value, const std::string& path);

  const std::vector<DefinitionError>& errors() const { return errors_; }
  std::vector<DefinitionError> Take() { return std::move(errors_); }

 private:
  std::vector<DefinitionError> errors_;
};

// True for a string that is exactly one `${...}`. It stands for a value of
// any type, known only when rendered, so type checks let it pass.
bool IsWholeTemplate(const nlohmann::json& value);

}  // namespace cde::definition_internal

#endif  // CDE_ENGINE_DEFINITION_CHECKS_H_
