// JSON paths and text as users read them, shared by the definition checks,
// the input schema, templating and the actions. Internal to engine/.
#ifndef CDE_ENGINE_JSON_TEXT_H_
#define CDE_ENGINE_JSON_TEXT_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace cde {

// "steps[2].retry": a key or an index below `path` ("" is the root).
std::string JoinKey(const std::string& path, std::string_view key);
std::string JoinIndex(const std::string& path, size_t index);

// `bytes` as a JSON string can hold them: output and messages end up in
// JSON, which cannot hold invalid UTF-8, so bad sequences become U+FFFD.
std::string ValidUtf8(const std::string& bytes);

// Compact JSON that cannot throw, even on invalid UTF-8 in strings (bad
// sequences become U+FFFD).
std::string DumpJson(const nlohmann::json& value);

}  // namespace cde

#endif  // CDE_ENGINE_JSON_TEXT_H_
