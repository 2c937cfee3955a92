#include "engine/input_schema.h"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "engine/json_text.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 7> kTypeNames = {
    "object", "array", "string", "number", "integer", "boolean", "null"};

// Keywords that describe the schema and constrain nothing.
constexpr std::array<std::string_view, 5> kAnnotations = {
    "title", "description", "default", "examples", "$schema"};

constexpr std::array<std::string_view, 4> kNumberBounds = {
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};

constexpr std::array<std::string_view, 4> kCounts = {"minLength", "maxLength",
                                                     "minItems", "maxItems"};

template <size_t N>
bool Contains(const std::array<std::string_view, N>& names,
              std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string At(const std::string& path, const std::string& message) {
  return path.empty() ? message : path + ": " + message;
}

// Patterns come from clients, and are matched on the loop thread: they are
// compiled by RE2, whose matching takes time linear in the subject (no
// backtracking, so no `^(a+)+$` can stall the server), with its memory
// bounded. What RE2 cannot do in linear time (backreferences, lookaround)
// it refuses to compile, and the registration is refused with it.
constexpr int64_t kPatternMaxMem = 1 << 20;  // bytes for the compiled program

std::unique_ptr<re2::RE2> CompilePattern(const std::string& source) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(kPatternMaxMem);
  return std::make_unique<re2::RE2>(source, options);
}

// Every start validates its input, and compiling a pattern costs more than
// matching it: the programs of the patterns used last are kept. A few
// workflows' patterns serve nearly every start; the bound keeps a client
// that registers many large ones from holding more than kCached programs
// (each at most kPatternMaxMem). RE2 objects may be matched from any
// thread; the lock guards the cache only.
class PatternCache {
 public:
  static constexpr size_t kCached = 64;

  std::shared_ptr<const re2::RE2> Get(const std::string& source) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = index_.find(source); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    std::shared_ptr<const re2::RE2> re = CompilePattern(source);
    order_.emplace_front(source, re);
    index_[source] = order_.begin();
    if (order_.size() > kCached) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return re;
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const re2::RE2>>;
  std::mutex mu_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

PatternCache& Patterns() {
  static PatternCache* cache = new PatternCache;  // never destroyed
  return *cache;
}

// RE2's messages quote its internals; these texts are ours, so users and
// tests see the same message everywhere.
std::string PatternProblem(const re2::RE2& re) {
  switch (re.error_code()) {
    case re2::RE2::ErrorMissingParen:
    case re2::RE2::ErrorUnexpectedParen:
      return "unbalanced parentheses";
    case re2::RE2::ErrorMissingBracket:
      return "unbalanced brackets";
    case re2::RE2::ErrorRepeatSize:
      return "invalid {} repetition";
    case re2::RE2::ErrorRepeatArgument:
    case re2::RE2::ErrorRepeatOp:
      return "nothing to repeat";
    case re2::RE2::ErrorBadEscape:
    case re2::RE2::ErrorTrailingBackslash:
      return "invalid escape";
    case re2::RE2::ErrorBadCharRange:
      return "invalid character range";
    case re2::RE2::ErrorBadCharClass:
      return "invalid character class";
    case re2::RE2::ErrorBadPerlOp:
      return "unsupported construct '" + re.error_arg() +
             "' (backreferences and lookaround cannot be matched in linear "
             "time)";
    case re2::RE2::ErrorBadUTF8:
      return "invalid UTF-8";
    case re2::RE2::ErrorBadNamedCapture:
      return "invalid named group";
    default:
      return "too complex";
  }
}

// ---- Checking the schema itself -------------------------------------------

void CheckSchema(const json& schema, const std::string& where,
                 std::vector<std::string>* errors);

void CheckType(const json& type, const std::string& path,
               std::vector<std::string>* errors) {
  auto check_name = [&](const json& name, const std::string& at) {
    if (!name.is_string() ||
        !Contains(kTypeNames, name.get_ref<const std::string&>())) {
      errors->push_back(At(at,
                           "must be one of object, array, string, number, "
                           "integer, boolean, null"));
    }
  };
  if (type.is_string()) {
    check_name(type, path);
  } else if (type.is_array() && !type.empty()) {
    for (size_t i = 0; i < type.size(); ++i) {
      check_name(type[i], JoinIndex(path, i));
    }
  } else {
    errors->push_back(
        At(path, "must be a type name or a non-empty array of type names"));
  }
}

void CheckRequired(const json& required, const std::string& path,
                   std::vector<std::string>* errors) {
  if (!required.is_array()) {
    errors->push_back(At(path, "must be an array of field names"));
    return;
  }
  for (size_t i = 0; i < required.size(); ++i) {
    if (!required[i].is_string()) {
      errors->push_back(At(JoinIndex(path, i), "must be a string"));
    }
  }
}

void CheckPattern(const json& pattern, const std::string& path,
                  std::vector<std::string>* errors) {
  if (!pattern.is_string()) {
    errors->push_back(At(path, "must be a string"));
    return;
  }
  const auto re = CompilePattern(pattern.get<std::string>());
  if (!re->ok()) {
    errors->push_back(
        At(path, "is not a valid regular expression: " + PatternProblem(*re)));
  }
}

// One keyword of a schema object at `where`.
void CheckKeyword(const std::string& key, const json& value,
                  const std::string& where, std::vector<std::string>* errors) {
  const std::vector<std::string>& keywords = InputSchemaKeywords();
  if (std::find(keywords.begin(), keywords.end(), key) == keywords.end()) {
    errors->push_back(At(where, "unknown keyword '" + key + "'"));
    return;
  }
  const std::string path = JoinKey(where, key);
  if (key == "type") {
    CheckType(value, path, errors);
  } else if (key == "properties") {
    if (!value.is_object()) {
      errors->push_back(At(path, "must be an object"));
      return;
    }
    for (const auto& [name, sub] : value.items()) {
      CheckSchema(sub, JoinKey(path, name), errors);
    }
  } else if (key == "items") {
    CheckSchema(value, path, errors);
  } else if (key == "required") {
    CheckRequired(value, path, errors);
  } else if (key == "additionalProperties") {
    if (!value.is_boolean()) errors->push_back(At(path, "must be a boolean"));
  } else if (key == "enum") {
    if (!value.is_array() || value.empty()) {
      errors->push_back(At(path, "must be a non-empty array"));
    }
  } else if (Contains(kNumberBounds, key)) {
    if (!value.is_number()) errors->push_back(At(path, "must be a number"));
  } else if (Contains(kCounts, key)) {
    if (!value.is_number_unsigned() &&
        !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
      errors->push_back(At(path, "must be a non-negative integer"));
    }
  } else if (key == "pattern") {
    CheckPattern(value, path, errors);
  }  // const and the annotations take any value
}

void CheckSchema(const json& schema, const std::string& where,
                 std::vector<std::string>* errors) {
  if (!schema.is_object()) {
    errors->push_back(At(where, "must be an object"));
    return;
  }
  for (const auto& [key, value] : schema.items()) {
    CheckKeyword(key, value, where, errors);
  }
}

// ---- Validating an input ---------------------------------------------------

bool HasType(const json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    // JSON Schema: 2.0 is an integer; the encoding is not the value.
    if (!value.is_number_float()) return false;
    const double d = value.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return false;
}

void ValidateType(const json& type, const json& value, const std::string& path,
                  std::vector<std::string>* errors) {
  std::vector<std::string> names;
  if (type.is_string()) names.push_back(type.get<std::string>());
  if (type.is_array()) {
    for (const json& name : type) {
      if (name.is_string()) names.push_back(name.get<std::string>());
    }
  }
  if (names.empty()) return;
  std::string wanted;
  for (const std::string& name : names) {
    if (HasType(value, name)) return;
    wanted += (wanted.empty() ? "" : " or ") + name;
  }
  errors->push_back(At(path, "must be of type " + wanted));
}

void ValidateNumber(const json& schema, const json& value,
                    const std::string& path, std::vector<std::string>* errors) {
  auto bound = [&](const char* key, const char* op, auto violated) {
    const auto it = schema.find(key);
    if (it != schema.end() && it->is_number() && violated(value, *it)) {
      errors->push_back(
          At(path, std::string("must be ") + op + " " + DumpJson(*it)));
    }
  };
  bound("minimum", ">=", [](const json& v, const json& b) { return v < b; });
  bound("maximum", "<=", [](const json& v, const json& b) { return v > b; });
  bound("exclusiveMinimum", ">",
        [](const json& v, const json& b) { return v <= b; });
  bound("exclusiveMaximum", "<",
        [](const json& v, const json& b) { return v >= b; });
}

// The count in `schema[key]`, or -1 when absent or not a count.
int64_t Count(const json& schema, const char* key) {
  const auto it = schema.find(key);
  if (it == schema.end() || !it->is_number_integer()) return -1;
  if (it->is_number_unsigned()) {
    return static_cast<int64_t>(std::min<uint64_t>(
        it->get<uint64_t>(), std::numeric_limits<int64_t>::max()));
  }
  return it->get<int64_t>();
}

std::string Plural(int64_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// Unicode code points in valid UTF-8: every byte but continuation bytes.
int64_t CodePoints(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  });
}

void ValidatePattern(const json& pattern, const std::string& text,
                     const std::string& path,
                     std::vector<std::string>* errors) {
  if (!pattern.is_string()) return;
  const std::string& source = pattern.get_ref<const std::string&>();
  const auto re = Patterns().Get(source);
  if (!re->ok()) {  // only a definition stored before RE2 can get here
    errors->push_back(At(path, "cannot be matched against pattern '" + source +
                                   "': " + PatternProblem(*re)));
    return;
  }
  // JSON Schema patterns are not anchored: search, not match.
  if (!re2::RE2::PartialMatch(text, *re)) {
    errors->push_back(At(path, "must match pattern '" + source + "'"));
  }
}

void ValidateString(const json& schema, const std::string& text,
                    const std::string& path, std::vector<std::string>* errors) {
  const int64_t length = CodePoints(text);
  const int64_t min = Count(schema, "minLength");
  if (min >= 0 && length < min) {
    errors->push_back(
        At(path, "must be at least " + Plural(min, "character") + " long"));
  }
  const int64_t max = Count(schema, "maxLength");
  if (max >= 0 && length > max) {
    errors->push_back(
        At(path, "must be at most " + Plural(max, "character") + " long"));
  }
  const auto pattern = schema.find("pattern");
  if (pattern != schema.end()) ValidatePattern(*pattern, text, path, errors);
}

void Validate(const json& schema, const json& value, const std::string& path,
              std::vector<std::string>* errors);

void ValidateArray(const json& schema, const json& value,
                   const std::string& path, std::vector<std::string>* errors) {
  const auto size = static_cast<int64_t>(value.size());
  const int64_t min = Count(schema, "minItems");
  if (min >= 0 && size < min) {
    errors->push_back(At(path, "must have at least " + Plural(min, "item")));
  }
  const int64_t max = Count(schema, "maxItems");
  if (max >= 0 && size > max) {
    errors->push_back(At(path, "must have at most " + Plural(max, "item")));
  }
  const auto items = schema.find("items");
  if (items == schema.end()) return;
  for (size_t i = 0; i < value.size(); ++i) {
    Validate(*items, value[i], JoinIndex(path, i), errors);
  }
}

// Fields in key order (each against its property schema, or rejected when
// additionalProperties is false), then the missing required fields.
void ValidateObject(const json& schema, const json& value,
                    const std::string& path, std::vector<std::string>* errors) {
  static const json kEmpty = json::object();
  const auto props_it = schema.find("properties");
  const json& props =
      props_it != schema.end() && props_it->is_object() ? *props_it : kEmpty;
  const auto additional = schema.find("additionalProperties");
  const bool closed = additional != schema.end() && additional->is_boolean() &&
                      !additional->get<bool>();
  for (const auto& [key, field] : value.items()) {
    const auto prop = props.find(key);
    if (prop != props.end()) {
      Validate(*prop, field, JoinKey(path, key), errors);
    } else if (closed) {
      errors->push_back(At(path, "unknown field '" + key + "'"));
    }
  }
  const auto required = schema.find("required");
  if (required == schema.end() || !required->is_array()) return;
  for (const json& name : *required) {
    if (name.is_string() && !value.contains(name.get<std::string>())) {
      errors->push_back(
          At(path, "missing required field '" + name.get<std::string>() + "'"));
    }
  }
}

void Validate(const json& schema, const json& value, const std::string& path,
              std::vector<std::string>* errors) {
  if (!schema.is_object()) return;
  const auto type = schema.find("type");
  if (type != schema.end()) ValidateType(*type, value, path, errors);
  const auto allowed = schema.find("enum");
  if (allowed != schema.end() && allowed->is_array() &&
      std::find(allowed->begin(), allowed->end(), value) == allowed->end()) {
    errors->push_back(At(path, "must be one of " + DumpJson(*allowed)));
  }
  const auto constant = schema.find("const");
  if (constant != schema.end() && *constant != value) {
    errors->push_back(At(path, "must be equal to " + DumpJson(*constant)));
  }
  if (value.is_number()) ValidateNumber(schema, value, path, errors);
  if (value.is_string()) {
    ValidateString(schema, value.get_ref<const std::string&>(), path, errors);
  }
  if (value.is_array()) ValidateArray(schema, value, path, errors);
  if (value.is_object()) ValidateObject(schema, value, path, errors);
}

std::string JoinErrors(const std::vector<std::string>& errors) {
  std::string out;
  for (const std::string& e : errors) {
    if (!out.empty()) out += "; ";
    out += e;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& InputSchemaKeywords() {
  static const auto* keywords = [] {
    auto* all = new std::vector<std::string>{
        "type",  "properties", "required", "additionalProperties",
        "items", "enum",       "const",    "pattern"};
    for (auto names :
         {std::vector<std::string_view>(kNumberBounds.begin(),
                                        kNumberBounds.end()),
          std::vector<std::string_view>(kCounts.begin(), kCounts.end()),
          std::vector<std::string_view>(kAnnotations.begin(),
                                        kAnnotations.end())}) {
      for (std::string_view name : names) all->emplace_back(name);
    }
    return all;
  }();
  return *keywords;
}

std::vector<std::string> CheckInputSchema(const nlohmann::json& schema,
                                          const std::string& where) {
  std::vector<std::string> errors;
  try {
    CheckSchema(schema, where, &errors);
  } catch (const std::exception& e) {  // a bug must not escape as a crash
    errors.push_back(At(where, std::string("internal error: ") + e.what()));
  }
  return errors;
}

Status ValidateInput(const nlohmann::json& schema,
                     const nlohmann::json& input) {
  std::vector<std::string> errors;
  try {
    Validate(schema, input, "input", &errors);
  } catch (const std::exception& e) {  // a bug must not escape as a crash
    errors.push_back(std::string("input: internal error: ") + e.what());
  }
  if (errors.empty()) return Status::OK();
  return Status::InvalidArgument(JoinErrors(errors));
}

namespace {

const json* Find(const json& object, const std::string& key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The first type a schema names ("type": "x" or ["x", ...]), or "".
std::string FirstType(const json& schema) {
  const json* type = Find(schema, "type");
  if (type == nullptr) return "";
  if (type->is_string()) return type->get<std::string>();
  if (type->is_array() && !type->empty() && (*type)[0].is_string()) {
    return (*type)[0].get<std::string>();
  }
  return "";
}

json ExampleOf(const json& schema, int depth) {
  if (!schema.is_object() || depth > 32) return nullptr;
  if (const json* v = Find(schema, "examples");
      v != nullptr && v->is_array() && !v->empty()) {
    return (*v)[0];
  }
  if (const json* v = Find(schema, "default")) return *v;
  if (const json* v = Find(schema, "const")) return *v;
  if (const json* v = Find(schema, "enum");
      v != nullptr && v->is_array() && !v->empty()) {
    return (*v)[0];
  }
  const std::string type = FirstType(schema);
  if (type == "object" || (type.empty() && Find(schema, "properties"))) {
    json out = json::object();
    const json* properties = Find(schema, "properties");
    if (const json* required = Find(schema, "required");
        required != nullptr && required->is_array()) {
      for (const json& name : *required) {
        if (!name.is_string()) continue;
        const std::string& key = name.get_ref<const std::string&>();
        const json* property =
            properties != nullptr ? Find(*properties, key) : nullptr;
        out[key] = property != nullptr ? ExampleOf(*property, depth + 1)
                                       : json(nullptr);
      }
    }
    return out;
  }
  if (type == "array") {
    json out = json::array();
    const json* items = Find(schema, "items");
    const int64_t min = std::max<int64_t>(Count(schema, "minItems"), 0);
    for (int64_t i = 0; i < std::min<int64_t>(min, 100); ++i) {
      out.push_back(items != nullptr ? ExampleOf(*items, depth + 1) : json());
    }
    return out;
  }
  if (type == "string") {
    const int64_t min = std::max<int64_t>(Count(schema, "minLength"), 0);
    return std::string(static_cast<size_t>(std::min<int64_t>(min, 1024)), 'x');
  }
  if (type == "integer" || type == "number") {
    double value = 0;
    if (const json* v = Find(schema, "minimum"); v && v->is_number()) {
      value = std::ceil(v->get<double>());
    } else if (const json* x = Find(schema, "exclusiveMinimum");
               x && x->is_number()) {
      value = std::floor(x->get<double>()) + 1;
    } else if (const json* m = Find(schema, "maximum");
               m && m->is_number() && m->get<double>() < 0) {
      value = std::floor(m->get<double>());
    }
    if (type == "integer" || value == std::floor(value)) {
      return static_cast<int64_t>(value);
    }
    return value;
  }
  if (type == "boolean") return false;
  return nullptr;
}

}  // namespace

json GenerateExampleInput(const json& schema) {
  if (schema.is_null()) return json::object();
  json example = ExampleOf(schema, 0);
  if (!ValidateInput(schema, example).ok()) return nullptr;
  return example;
}

}  // namespace cde
