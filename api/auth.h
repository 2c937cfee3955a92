// Who is calling and what they may do: named bearer tokens with scopes.
//
// A token is configured by its name, the SHA-256 of its secret (hex) and
// its scopes; the secret itself is never in the configuration or a log.
// Every MCP tool, resource, task method and HTTP endpoint needs one scope
// (docs/mcp.md lists them):
//   read    list and get workflows, sagas, logs, the DLQ, resources, metrics
//   run     start and cancel sagas
//   define  register workflows
//   admin   replay, purge, backup
// Scopes do not imply one another: a token lists each one it needs.
//
// Without any token configured the server listens on loopback only, and
// every caller is `anonymous` with every scope; over stdio (the client owns
// the pipe) the caller is `local` with every scope.
#ifndef CDE_API_AUTH_H_
#define CDE_API_AUTH_H_

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cde {

enum class Scope : uint8_t { kRead, kRun, kDefine, kAdmin };
inline constexpr Scope kAllScopes[] = {Scope::kRead, Scope::kRun,
                                       Scope::kDefine, Scope::kAdmin};

// The one mapping between scopes and their names ("read", ...).
std::string_view ScopeName(Scope scope);
std::optional<Scope> ScopeFromName(std::string_view name);

class ScopeSet {
 public:
  ScopeSet() = default;
  static ScopeSet All();
  void Add(Scope s) { bits_ |= Bit(s); }
  bool Has(Scope s) const { return (bits_ & Bit(s)) != 0; }
  bool empty() const { return bits_ == 0; }
  nlohmann::json ToJson() const;  // ["read", "run"]
  friend bool operator==(const ScopeSet&, const ScopeSet&) = default;

 private:
  static uint8_t Bit(Scope s) { return uint8_t(1u << static_cast<int>(s)); }
  uint8_t bits_ = 0;
};

// The caller of one request.
struct Principal {
  std::string name = "local";
  ScopeSet scopes = ScopeSet::All();
};

// A configured token (auth.tokens).
struct TokenConfig {
  std::string name;
  std::string sha256;  // 64 lower-case hex digits
  ScopeSet scopes;
  friend bool operator==(const TokenConfig&, const TokenConfig&) = default;
};

// The lower-case hex SHA-256 of `text`.
std::string Sha256Hex(std::string_view text);

// Why `name` cannot name a token, or "".
std::string TokenNameProblem(std::string_view name);

class TokenTable {
 public:
  TokenTable() = default;
  explicit TokenTable(std::vector<TokenConfig> tokens);

  // Whether any token is configured (else requests need none).
  bool enabled() const { return !tokens_.empty(); }

  // The caller an Authorization header value names: the token's principal,
  // or nullopt when the header holds no bearer token this table knows.
  // Without tokens, `anonymous` with every scope.
  std::optional<Principal> Authenticate(std::string_view authorization) const;

 private:
  struct Entry {
    std::array<uint8_t, 32> digest;
    Principal principal;
  };
  std::vector<Entry> tokens_;
};

}  // namespace cde

#endif  // CDE_API_AUTH_H_
