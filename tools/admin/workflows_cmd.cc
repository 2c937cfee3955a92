// cde-admin workflows list | show NAME[@VERSION]
#include <map>

#include "engine/definition_registry.h"
#include "engine/secrets.h"
#include "tools/admin/commands.h"
#include "tools/admin/saga_view.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

std::string Description(const DefinitionRecord& d) {
  auto it = d.definition.find("description");
  return it != d.definition.end() && it->is_string() ? it->get<std::string>()
                                                     : "";
}

json StepNames(const DefinitionRecord& d) {
  json names = json::array();
  if (auto def = ParseStoredDefinition(d); def.ok()) {
    for (const StepSpec& s : def->steps) names.push_back(s.name);
  }
  return names;
}

}  // namespace

int RunWorkflowsList(const Common& common) {
  StoreAccess access = OpenForRead(common.data_dir);
  const auto defs = Check(access.store->ListDefinitions());
  std::map<std::string, uint32_t> latest;
  for (const auto& d : defs) {
    latest[d.name] = std::max(latest[d.name], d.version);
  }
  if (common.json) {
    json list = json::array();
    for (const auto& d : defs) {
      list.push_back(
          {{"name", d.name},
           {"version", d.version},
           {"latest", latest[d.name] == d.version},
           {"registered_ms", d.registered_ms},
           {"registered_at", TimeJson(d.registered_ms)},
           {"origin", DefinitionOriginName(d.origin)},
           {"registered_by",
            d.registered_by.empty() ? json(nullptr) : json(d.registered_by)},
           {"description", Description(d)},
           {"steps", StepNames(d)}});
    }
    PrintJson({{"workflows", list}});
    return kExitOk;
  }
  if (defs.empty()) {
    std::printf("no workflows registered\n");
    return kExitOk;
  }
  Table t({"NAME", "VERSION", "STEPS", "REGISTERED", "DESCRIPTION"});
  for (const auto& d : defs) {
    const bool is_latest = latest[d.name] == d.version;
    t.AddRow({{d.name, is_latest ? Colour::kBold : Colour::kNone},
              std::to_string(d.version) + (is_latest ? " (latest)" : ""),
              std::to_string(StepNames(d).size()),
              FormatTime(d.registered_ms),
              Shorten(Description(d), 60)});
  }
  t.Print();
  return kExitOk;
}

WorkflowSpec ParseWorkflowSpec(const std::string& spec) {
  std::string name = spec;
  std::optional<uint32_t> version;
  if (const size_t at = spec.rfind('@'); at != std::string::npos) {
    name = spec.substr(0, at);
    const std::string v = spec.substr(at + 1);
    uint64_t n = 0;
    bool ok = !v.empty() && v.size() <= 10;
    for (char c : v) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || n == 0 || n > UINT32_MAX) {
      Fail(kExitUsage, "'" + spec +
                           "' is not NAME or NAME@VERSION (VERSION an "
                           "integer >= 1)");
    }
    version = static_cast<uint32_t>(n);
  }
  if (name.empty()) Fail(kExitUsage, "'" + spec + "' names no workflow");
  return {name, version};
}

const DefinitionRecord& FindDefinition(
    const std::vector<DefinitionRecord>& defs, const WorkflowSpec& spec) {
  const DefinitionRecord* found = nullptr;
  size_t versions = 0;
  for (const auto& d : defs) {
    if (d.name != spec.name) continue;
    ++versions;
    if (spec.version ? d.version == *spec.version
                     : found == nullptr || d.version > found->version) {
      found = &d;
    }
  }
  if (versions == 0) Fail(kExitFailed, "no workflow " + spec.name);
  if (found == nullptr) {
    Fail(kExitFailed, "workflow " + spec.name + " has no version " +
                          std::to_string(*spec.version));
  }
  return *found;
}

int RunWorkflowsShow(const Common& common, const std::string& spec_text) {
  const WorkflowSpec spec = ParseWorkflowSpec(spec_text);
  const std::string& name = spec.name;
  StoreAccess access = OpenForRead(common.data_dir);
  const auto defs = Check(access.store->ListDefinitions());
  const DefinitionRecord* found = &FindDefinition(defs, spec);
  uint32_t latest = 0;
  size_t versions = 0;
  for (const auto& d : defs) {
    if (d.name != name) continue;
    latest = std::max(latest, d.version);
    ++versions;
  }
  if (common.json) {
    PrintJson({{"name", found->name},
               {"version", found->version},
               {"latest", found->version == latest},
               {"versions", versions},
               {"registered_ms", found->registered_ms},
               {"registered_at", TimeJson(found->registered_ms)},
               {"origin", DefinitionOriginName(found->origin)},
               {"registered_by", found->registered_by.empty()
                                     ? json(nullptr)
                                     : json(found->registered_by)},
               {"definition", DefinitionForDisplay(found->definition)}});
    return kExitOk;
  }
  const std::string which =
      found->version == latest
          ? "the latest of " + std::to_string(versions) + " version" +
                (versions == 1 ? "" : "s")
          : "not the latest: that is " + name + "@" + std::to_string(latest);
  std::printf(
      "%s  %s; registered %s\n",
      Paint(found->name + "@" + std::to_string(found->version), Colour::kBold)
          .c_str(),
      which.c_str(), FormatTime(found->registered_ms).c_str());
  std::printf("%s\n", DefinitionForDisplay(found->definition).dump(2).c_str());
  return kExitOk;
}

}  // namespace cde::admin
