#include "engine/json_text.h"

#include <nlohmann/json.hpp>

namespace cde {

std::string JoinKey(const std::string& path, std::string_view key) {
  std::string out = path;
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string JoinIndex(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string ValidUtf8(const std::string& bytes) {
  using json = nlohmann::json;
  return json::parse(
             json(bytes).dump(-1, ' ', false, json::error_handler_t::replace))
      .get<std::string>();
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cde
