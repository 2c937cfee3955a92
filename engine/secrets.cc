#include "engine/secrets.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/templating.h"
#include "storage/json_depth.h"

namespace cde {
namespace {

using nlohmann::json;

bool IsSecretName(const std::string& name) {
  if (name.empty() ||
      !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

Status Add(const std::string& setting, const std::string& name,
           std::string value, std::map<std::string, std::string>* out) {
  if (!IsSecretName(name)) {
    return Status::InvalidArgument(setting + ": '" + name +
                                   "' is not a secret name ([A-Za-z_]"
                                   "[A-Za-z0-9_]*)");
  }
  if (value.size() < kMinSecretLength) {
    return Status::InvalidArgument(
        setting + ": " + name + " is shorter than " +
        std::to_string(kMinSecretLength) +
        " characters; so short a value would be found by chance, and "
        "redacted, in outputs");
  }
  if (!out->emplace(name, std::move(value)).second) {
    return Status::InvalidArgument(setting + ": " + name +
                                   " is defined twice (secrets.env and "
                                   "secrets.file)");
  }
  return Status::OK();
}

}  // namespace

void RedactText(const std::vector<std::string>& values, std::string* text) {
  for (const std::string& v : values) {
    for (size_t at = text->find(v); at != std::string::npos;
         at = text->find(v, at + std::char_traits<char>::length(kRedacted))) {
      text->replace(at, v.size(), kRedacted);
    }
  }
}

void RedactCutText(const std::vector<std::string>& values, std::string* text) {
  RedactText(values, text);
  size_t cut = 0;  // the longest tail that is a value's head
  for (const std::string& v : values) {
    if (v.empty()) continue;
    for (size_t n = std::min(v.size() - 1, text->size()); n > cut; --n) {
      if (text->compare(text->size() - n, n, v, 0, n) == 0) {
        cut = n;
        break;
      }
    }
  }
  if (cut > 0) text->replace(text->size() - cut, cut, kRedacted);
}

namespace {

json Redacted(const std::vector<std::string>& values, const json& value) {
  if (value.is_string()) {
    std::string text = value.get<std::string>();
    RedactText(values, &text);
    return text;
  }
  if (value.is_number()) {
    const std::string text = value.dump();
    for (const std::string& v : values) {
      if (text == v) return kRedacted;
    }
    return value;
  }
  if (value.is_array()) {
    json out = json::array();
    for (const json& item : value) out.push_back(Redacted(values, item));
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : value.items()) {
      std::string k = key;
      RedactText(values, &k);
      out[k] = Redacted(values, item);
    }
    return out;
  }
  return value;
}

bool IsCredentialHeader(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(c));
  for (const char* part :
       {"auth", "token", "secret", "password", "key", "cookie"}) {
    if (name.find(part) != std::string::npos) return true;
  }
  return false;
}

// True if `value` is template references only, perhaps after a scheme.
bool OnlyReferences(const std::string& value) {
  std::string rest;
  for (size_t i = 0; i < value.size();) {
    if (value.compare(i, 2, "${") == 0) {
      const size_t close = value.find('}', i);
      if (close == std::string::npos) return false;
      i = close + 1;
    } else {
      rest += value[i++];
    }
  }
  while (!rest.empty() && rest.back() == ' ') rest.pop_back();
  for (char& c : rest) c = static_cast<char>(std::tolower(c));
  return rest.empty() || rest == "bearer" || rest == "basic" ||
         rest == "token" || rest == "digest" || rest == "bot";
}

void RedactHeaders(json* spec) {
  if (!spec->is_object() || spec->value("action", "") != "http") return;
  auto params = spec->find("params");
  if (params == spec->end() || !params->is_object()) return;
  auto headers = params->find("headers");
  if (headers == params->end() || !headers->is_object()) return;
  for (auto& [name, value] : headers->items()) {
    if (IsCredentialHeader(name) &&
        !(value.is_string() && OnlyReferences(value.get<std::string>()))) {
      value = "[redacted]";
    }
  }
}

}  // namespace

json DefinitionForDisplay(const json& definition) {
  json out = definition;
  ForEachStepDocument(out, [](json& step) {
    RedactHeaders(&step);
    if (step.contains("compensate")) RedactHeaders(&step["compensate"]);
  });
  return out;
}

Result<Secrets> Secrets::Load(const SecretsOptions& options) {
  Secrets s;
  s.clients_ = options.clients;
  for (const std::string& name : options.env) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return Status::InvalidArgument("secrets.env: the environment variable " +
                                     name + " is not set");
    }
    CDE_RETURN_IF_ERROR(Add("secrets.env", name, value, &s.values_));
  }
  if (options.file.empty()) return std::move(s).Sorted();
  const std::string setting = "secrets.file " + options.file;
  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument(setting +
                                   ": cannot be read: " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  const json doc = ParseBoundedJson(text.str());
  if (!doc.is_object()) {
    return Status::InvalidArgument(
        setting + ": must be a JSON object of secret values by name");
  }
  for (const auto& [name, value] : doc.items()) {
    if (!value.is_string()) {
      return Status::InvalidArgument(setting + ": " + name +
                                     " must be a string");
    }
    CDE_RETURN_IF_ERROR(
        Add(setting, name, value.get<std::string>(), &s.values_));
  }
  return std::move(s).Sorted();
}

Secrets Secrets::Sorted() && {
  std::vector<std::string> all;
  for (const auto& [name, value] : values_) all.push_back(value);
  std::sort(all.begin(), all.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() > b.size();
            });
  redactions_ =
      std::make_shared<const std::vector<std::string>>(std::move(all));
  return std::move(*this);
}

bool NamesSecrets(const json& params) {
  auto refs = CollectTemplateRefs(params, "params");
  if (!refs.ok()) return false;
  for (const TemplateRef& ref : *refs) {
    if (ref.root == TemplateRef::Root::kSecret) return true;
  }
  return false;
}

std::vector<DefinitionError> Secrets::Check(const WorkflowDefinition& def,
                                            bool client) const {
  std::vector<DefinitionError> out;
  auto check = [&](const ActionSpec& spec, const std::string& path) {
    auto refs = CollectTemplateRefs(spec.params, path);
    if (!refs.ok()) return;  // the definition check reports it
    for (const TemplateRef& ref : *refs) {
      if (ref.root != TemplateRef::Root::kSecret) continue;
      const std::string text = "${secret." + ref.path[0] + "}";
      if (spec.action == "sleep") {
        // Its duration is rendered where the saga is planned, and logged:
        // secrets are rendered into the params of attempts only.
        out.push_back({path, text + ": a sleep's duration cannot use a "
                                    "secret"});
      } else if (client && !clients_) {
        out.push_back({path, text +
                                 ": secrets are not available to definitions "
                                 "registered by clients (secrets.clients is "
                                 "off)"});
      } else if (values_.count(ref.path[0]) == 0) {
        out.push_back({path, text + ": no secret " + ref.path[0] +
                                 " is configured (secrets.env, "
                                 "secrets.file)"});
      }
    }
  };
  for (const StepSpec& step : def.steps) {
    if (step.kind != StepKind::kAction) continue;
    check(step.run, step.where + ".params");
    if (step.compensate) {
      check(*step.compensate, step.where + ".compensate.params");
    }
  }
  return out;
}

void RedactSecrets(const std::vector<std::string>& values,
                   ActionResult* result) {
  if (values.empty()) return;
  if (result->ok) {
    result->output = Redacted(values, result->output);
  } else {
    RedactText(values, &result->error.kind);
    RedactText(values, &result->error.message);
  }
}

}  // namespace cde
