#include "engine/definition_checks.h"

#include <cmath>
#include <utility>

namespace cde::definition_internal {

using nlohmann::json;

namespace {

// "1" rather than "1.000000" for whole bounds.
std::string FormatBound(double d) {
  if (std::floor(d) == d && std::fabs(d) < 1e15) {
    return std::to_string(static_cast<int64_t>(d));
  }
  return json(d).dump();
}

}  // namespace

void Problems::Add(std::string path, std::string message) {
  errors_.push_back({std::move(path), std::move(message)});
}

std::optional<uint64_t> Problems::Integer(const json& value,
                                          const std::string& path, uint64_t min,
                                          uint64_t max) {
  if (!value.is_number_integer()) {
    Add(path, "must be an integer");
    return std::nullopt;
  }
  // Parsed non-negative integers are unsigned; built ones may be signed.
  if (!value.is_number_unsigned() && value.get<int64_t>() < 0) {
    Add(path, "must be >= " + std::to_string(min));
    return std::nullopt;
  }
  const uint64_t n = value.get<uint64_t>();
  if (n < min) {
    Add(path, "must be >= " + std::to_string(min));
    return std::nullopt;
  }
  if (n > max) {
    Add(path, "must be <= " + std::to_string(max));
    return std::nullopt;
  }
  return n;
}

std::optional<double> Problems::Number(const json& value,
                                       const std::string& path, double min,
                                       double max) {
  if (!value.is_number()) {
    Add(path, "must be a number");
    return std::nullopt;
  }
  const double d = value.get<double>();
  if (!(d >= min)) {  // also catches NaN
    Add(path, "must be >= " + FormatBound(min));
    return std::nullopt;
  }
  if (d > max) {
    Add(path, "must be <= " + FormatBound(max));
    return std::nullopt;
  }
  return d;
}

bool Problems::String(const json& value, const std::string& path) {
  if (value.is_string()) return true;
  Add(path, "must be a string");
  return false;
}

bool IsWholeTemplate(const json& value) {
  if (!value.is_string()) return false;
  const std::string& s = value.get_ref<const std::string&>();
  // A reference ends at the first '}', so one that closes at the very end
  // is the whole string. Its syntax is checked with the other templates.
  return s.size() >= 3 && s.starts_with("${") && s.find('}') == s.size() - 1;
}

}  // namespace cde::definition_internal
