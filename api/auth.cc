#include "api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>

namespace cde {
namespace {

constexpr const char* kScopeNames[] = {"read", "run", "define", "admin"};

std::array<uint8_t, 32> Digest(std::string_view text) {
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), out.data(), &n, EVP_sha256(), nullptr);
  return out;
}

std::array<uint8_t, 32> FromHex(const std::string& hex) {
  std::array<uint8_t, 32> out{};
  for (size_t i = 0; i < out.size() && 2 * i + 1 < hex.size(); ++i) {
    out[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

}  // namespace

std::string_view ScopeName(Scope scope) {
  return kScopeNames[static_cast<int>(scope)];
}

std::optional<Scope> ScopeFromName(std::string_view name) {
  for (Scope s : kAllScopes) {
    if (ScopeName(s) == name) return s;
  }
  return std::nullopt;
}

ScopeSet ScopeSet::All() {
  ScopeSet all;
  for (Scope s : kAllScopes) all.Add(s);
  return all;
}

nlohmann::json ScopeSet::ToJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (Scope s : kAllScopes) {
    if (Has(s)) out.push_back(std::string(ScopeName(s)));
  }
  return out;
}

std::string Sha256Hex(std::string_view text) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : Digest(text)) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string TokenNameProblem(std::string_view name) {
  if (name.empty() || name.size() > 64) return "must be 1 to 64 characters";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
        c != '.') {
      return "may hold only letters, digits, '-', '_' and '.'";
    }
  }
  if (name == "local" || name == "anonymous") {
    return "'" + std::string(name) + "' is the name of callers without a token";
  }
  return "";
}

TokenTable::TokenTable(std::vector<TokenConfig> tokens) {
  for (TokenConfig& t : tokens) {
    tokens_.push_back({FromHex(t.sha256), {std::move(t.name), t.scopes}});
  }
}

std::optional<Principal> TokenTable::Authenticate(
    std::string_view authorization) const {
  if (tokens_.empty()) return Principal{"anonymous", ScopeSet::All()};
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) return std::nullopt;
  const auto digest = Digest(authorization.substr(kBearer.size()));
  const Entry* found = nullptr;
  // Every entry is compared, in constant time: how long a refusal takes
  // tells nothing about the configured tokens.
  for (const Entry& e : tokens_) {
    if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) {
      found = &e;
    }
  }
  if (found == nullptr) return std::nullopt;
  return found->principal;
}

}  // namespace cde
