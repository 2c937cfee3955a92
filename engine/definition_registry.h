// DefinitionRegistry: the workflow definitions this engine runs and the
// native actions they may name, in memory (the store keeps the records),
// and the rules a new definition meets before it is committed. The engine
// commits what the registry admits and loads it once committed.
//
// Thread safety: loop thread only.
#ifndef CDE_ENGINE_DEFINITION_REGISTRY_H_
#define CDE_ENGINE_DEFINITION_REGISTRY_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/action_policy.h"
#include "engine/actions.h"
#include "engine/definition.h"
#include "engine/destination_policy.h"
#include "engine/secrets.h"
#include "storage/records.h"
#include "storage/status.h"

namespace cde {

// What a registration is checked against, beside the definition language.
struct RegistrationRules {
  const Secrets& secrets;
  const ActionPolicy& action_policy;
  const DestinationPolicy& destinations;
  uint64_t definition_bytes;  // EngineLimits
  uint32_t definition_steps;
  uint32_t branches;
};

class DefinitionRegistry {
 public:
  using DefPtr = std::shared_ptr<const WorkflowDefinition>;

  explicit DefinitionRegistry(std::map<std::string, NativeAction> actions);

  // AlreadyExists for a built-in or registered name.
  Status AddAction(const std::string& name, NativeAction action);
  const NativeAction* FindAction(const std::string& name) const;
  // The definition language's JSON Schema, naming this registry's native
  // actions; made on first use after each AddAction.
  const nlohmann::json& Schema() const;

  // Loads a committed record (validated when it was registered; the native
  // actions it names need not be registered in this process yet).
  Status Load(const DefinitionRecord& record);
  // nullopt version: the latest.
  DefPtr Find(const std::string& name, std::optional<uint32_t> version) const;
  std::vector<DefPtr> List() const;

  // A registration the registry admits. `unchanged`: this very document is
  // registered already, nothing to commit.
  struct Admitted {
    std::string name;
    uint32_t version = 0;
    std::optional<DefinitionRecord> unchanged;
  };
  // Checks `doc` as `origin` registers it: the language, secrets, the
  // client action policy, immutability of versions, size limits. When it
  // is to be committed, claims (name, version) until Release, so that two
  // registrations of one new version cannot both be written (Busy).
  Result<Admitted> Admit(const nlohmann::json& doc, DefinitionOrigin origin,
                         const RegistrationRules& rules);
  void Release(const std::string& name, uint32_t version);

 private:
  std::map<std::string, NativeAction> actions_;
  mutable nlohmann::json schema_;  // null: to be made
  // name -> version -> definition
  std::map<std::string, std::map<uint32_t, DefPtr>> definitions_;
  // The registered documents, so re-registration compares in memory.
  std::map<std::pair<std::string, uint32_t>, DefinitionRecord> records_;
  std::set<std::pair<std::string, uint32_t>> claimed_;
};

// A definition as stored: validated when it was registered, so the native
// actions it names are taken as known even if this process has not
// registered them (yet). What the engine loads, and what cde-admin reads.
Result<WorkflowDefinition> ParseStoredDefinition(
    const DefinitionRecord& record);

}  // namespace cde

#endif  // CDE_ENGINE_DEFINITION_REGISTRY_H_
