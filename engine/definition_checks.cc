#include "engine/definition_checks.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <utility>

namespace cde::definition_internal {

using nlohmann::json;

std::string JoinKey(const std::string& path, std::string_view key) {
  std::string out = path;
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string JoinIndex(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

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

void Problems::UnknownKeys(const json& object, const std::string& path,
                           std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      Add(path, "unknown key '" + key + "'");
    }
  }
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

bool Problems::Object(const json& value, const std::string& path) {
  if (value.is_object()) return true;
  Add(path, "must be an object");
  return false;
}

bool IsWholeTemplate(const json& value) {
  if (!value.is_string()) return false;
  const std::string& s = value.get_ref<const std::string&>();
  // A reference ends at the first '}', so one that closes at the very end
  // is the whole string. Its syntax is checked with the other templates.
  return s.size() >= 3 && s.starts_with("${") && s.find('}') == s.size() - 1;
}

namespace {

// ---- Built-in actions' params --------------------------------------------
// Each check sees an object and reports at paths below `path`.

const json* Find(const json& params, const char* key) {
  const auto it = params.find(key);
  return it == params.end() ? nullptr : &*it;
}

void CheckFail(const json& params, const std::string& path, Problems* p) {
  p->UnknownKeys(params, path, {"fail_attempts", "error", "kind"});
  if (const json* n = Find(params, "fail_attempts");
      n && !IsWholeTemplate(*n)) {
    p->Integer(*n, JoinKey(path, "fail_attempts"), 0);
  }
  if (const json* error = Find(params, "error")) {
    p->String(*error, JoinKey(path, "error"));
  }
  if (const json* kind = Find(params, "kind")) {
    p->String(*kind, JoinKey(path, "kind"));
  }
}

void CheckSleep(const json& params, const std::string& path, Problems* p) {
  p->UnknownKeys(params, path, {"duration_ms"});
  const json* duration = Find(params, "duration_ms");
  if (duration == nullptr) {
    p->Add(JoinKey(path, "duration_ms"), "is required");
  } else if (!IsWholeTemplate(*duration)) {
    p->Integer(*duration, JoinKey(path, "duration_ms"), 0, kMaxDurationMs);
  }
}

// An object whose values are strings (exec's env, http's headers).
void CheckStringMap(const json& map, const std::string& path, Problems* p) {
  if (IsWholeTemplate(map) || !p->Object(map, path)) return;
  for (const auto& [key, value] : map.items()) {
    p->String(value, JoinKey(path, key));
  }
}

void CheckArgv(const json* argv, const std::string& path, Problems* p) {
  if (argv == nullptr) {
    p->Add(path, "is required");
    return;
  }
  if (IsWholeTemplate(*argv)) return;
  if (!argv->is_array() || argv->empty()) {
    p->Add(path, "must be a non-empty array of strings");
    return;
  }
  for (size_t i = 0; i < argv->size(); ++i) {
    p->String((*argv)[i], JoinIndex(path, i));
  }
}

void CheckExec(const json& params, const std::string& path, Problems* p) {
  p->UnknownKeys(params, path, {"argv", "env", "cwd", "stdin"});
  CheckArgv(Find(params, "argv"), JoinKey(path, "argv"), p);
  if (const json* env = Find(params, "env")) {
    const std::string env_path = JoinKey(path, "env");
    CheckStringMap(*env, env_path, p);
    if (env->is_object()) {
      // setenv() cannot represent these; fail at registration, not per run.
      for (const auto& [name, value] : env->items()) {
        if (name.empty() || name.find('=') != std::string::npos) {
          p->Add(env_path, "invalid variable name '" + name + "'");
        }
      }
    }
  }
  if (const json* cwd = Find(params, "cwd")) {
    p->String(*cwd, JoinKey(path, "cwd"));
  }
}

bool StartsWithNoCase(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(),
                    [](char a, char b) {
                      return std::tolower(static_cast<unsigned char>(a)) ==
                             std::tolower(static_cast<unsigned char>(b));
                    });
}

void CheckUrl(const json* url, const std::string& path, Problems* p) {
  if (url == nullptr) {
    p->Add(path, "is required");
    return;
  }
  if (!p->String(*url, path)) return;
  const std::string& s = url->get_ref<const std::string&>();
  // A leading template supplies the scheme when rendered.
  if (s.starts_with("${") || StartsWithNoCase(s, "http://") ||
      StartsWithNoCase(s, "https://")) {
    return;
  }
  p->Add(path, "must start with http:// or https://");
}

void CheckHttp(const json& params, const std::string& path, Problems* p) {
  p->UnknownKeys(params, path,
                 {"method", "url", "headers", "body", "timeout_ms"});
  if (const json* t = Find(params, "timeout_ms"); t && !IsWholeTemplate(*t)) {
    p->Integer(*t, JoinKey(path, "timeout_ms"), 1, kMaxDurationMs);
  }
  if (const json* method = Find(params, "method");
      method && !IsWholeTemplate(*method)) {
    static constexpr std::array<std::string_view, 6> kMethods = {
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
    if (!method->is_string() ||
        std::find(kMethods.begin(), kMethods.end(),
                  method->get_ref<const std::string&>()) == kMethods.end()) {
      p->Add(JoinKey(path, "method"),
             "must be one of GET, POST, PUT, PATCH, DELETE, HEAD");
    }
  }
  CheckUrl(Find(params, "url"), JoinKey(path, "url"), p);
  if (const json* headers = Find(params, "headers")) {
    CheckStringMap(*headers, JoinKey(path, "headers"), p);
  }
}

}  // namespace

void CheckBuiltinParams(const std::string& action, const json& params,
                        const std::string& path, Problems* problems) {
  if (action == "noop") {
    problems->UnknownKeys(params, path, {});
  } else if (action == "fail") {
    CheckFail(params, path, problems);
  } else if (action == "sleep") {
    CheckSleep(params, path, problems);
  } else if (action == "exec") {
    CheckExec(params, path, problems);
  } else if (action == "http") {
    CheckHttp(params, path, problems);
  }
  // echo returns its params, whatever they are.
}

}  // namespace cde::definition_internal
