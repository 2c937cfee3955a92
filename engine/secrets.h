// Secrets: values a workflow's action params name as ${secret.NAME}, read
// from environment variables or a file the configuration names. They are
// rendered into an attempt's params only: the definition keeps the
// reference, and a value that comes back (echoed in an output, quoted in an
// error) is replaced by "[secret]" before anything is committed or logged.
//
// Thread safety: a loaded Secrets is immutable.
#ifndef CDE_ENGINE_SECRETS_H_
#define CDE_ENGINE_SECRETS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/actions.h"
#include "engine/definition.h"
#include "storage/status.h"

namespace cde {

struct SecretsOptions {
  // Names of environment variables, each a secret of the same name.
  std::vector<std::string> env;
  // A JSON object of string values by name ("" = none); readable by the
  // server's user only, as the configuration is.
  std::string file;
  // Whether definitions registered by clients may name secrets. Off: a
  // prompt-injected client could send any secret anywhere its policy lets
  // an http step reach.
  bool clients = false;

  friend bool operator==(const SecretsOptions&,
                         const SecretsOptions&) = default;
};

// Shorter values would be found by chance in outputs, and replaced there.
inline constexpr size_t kMinSecretLength = 4;

// What replaces a secret's value wherever it comes back.
inline constexpr const char* kRedacted = "[secret]";

class Secrets {
 public:
  Secrets() = default;

  // Reads the variables and the file now. InvalidArgument naming the
  // setting (and the name) for a variable that is not set, a file that
  // cannot be read or is not an object of strings, a name that is not
  // [A-Za-z_][A-Za-z0-9_]*, one defined twice, or a value shorter than
  // kMinSecretLength.
  static Result<Secrets> Load(const SecretsOptions& options);

  const std::map<std::string, std::string>& values() const { return values_; }
  bool clients() const { return clients_; }
  // Every value, longest first (so that one inside another goes whole),
  // for RedactSecrets: what comes back from any attempt may hold any of
  // them (an operator's child inherits the environment they came from).
  // Shared, so that a result arriving late on another thread holds it.
  std::shared_ptr<const std::vector<std::string>> redactions() const {
    return redactions_;
  }

  // What `def` may not do with secrets, by the path of each reference: name
  // one that is not configured, or (registered by a client) name any while
  // clients may not.
  std::vector<DefinitionError> Check(const WorkflowDefinition& def,
                                     bool client) const;

 private:
  // Fills redactions_ from values_.
  Secrets Sorted() &&;

  std::map<std::string, std::string> values_;
  bool clients_ = false;
  std::shared_ptr<const std::vector<std::string>> redactions_ =
      std::make_shared<const std::vector<std::string>>();
};

// True if `params` name a secret anywhere.
bool NamesSecrets(const nlohmann::json& params);

// A definition document as every surface shows it (MCP resources,
// cde-admin): the value of each credential header of its http steps
// (Authorization, Cookie, X-Api-Key and any name with auth, token, secret,
// password or key in it) replaced by "[redacted]", unless it is references
// only, perhaps after a scheme ("Bearer ${secret.API_TOKEN}"). A token
// written into a definition should be a secret; this keeps one that was
// not from being read back by every client.
nlohmann::json DefinitionForDisplay(const nlohmann::json& definition);

// Replaces every occurrence of each of `values` (longest first) in `text`
// with kRedacted.
void RedactText(const std::vector<std::string>& values, std::string* text);

// RedactText for a `text` that someone else cut at its end before it could
// be redacted (curl's error buffer holds 255 bytes): a tail that begins one
// of `values` (a value cut in two) is replaced with kRedacted too.
void RedactCutText(const std::vector<std::string>& values, std::string* text);

// Replaces every occurrence of each of `values` in `result`'s output (its
// strings and keys, and numbers whose text is one) and error kind and
// message with kRedacted.
void RedactSecrets(const std::vector<std::string>& values,
                   ActionResult* result);

}  // namespace cde

#endif  // CDE_ENGINE_SECRETS_H_
