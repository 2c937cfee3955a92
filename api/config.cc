#include "api/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include "storage/json_depth.h"

extern char** environ;

namespace cde {
namespace {

using nlohmann::json;

// One thing wrong with a configuration. An empty path is the document.
struct Problem {
  std::string path;
  std::string what;
};
using Problems = std::vector<Problem>;

// How the value of one key is checked and stored into a T. Environment
// values of `string` keys are taken as they are, since quoting a path or a
// level in JSON would be a trap; the others are parsed as JSON.
template <typename T>
struct Rule {
  bool string = false;
  std::function<void(const json& value, const std::string& path, T* target,
                     Problems* problems)>
      apply;
};

template <typename T>
struct NamedRule {
  std::string name;
  Rule<T> rule;
};
template <typename T>
using Rules = std::vector<NamedRule<T>>;

// A member of the target, for the rule builders: CDE_MEMBER(http.host).
#define CDE_MEMBER(m) \
  [](auto& t) -> auto& { return t.m; }

std::string Text(double d) {
  std::ostringstream out;
  out << d;
  return out.str();
}

template <typename T, typename Member>
Rule<T> String(Member member) {
  return {true,
          [member](const json& v, const std::string& path, T* t, Problems* p) {
            if (!v.is_string()) {
              p->push_back({path, "must be a string"});
              return;
            }
            member(*t) = v.get<std::string>();
          }};
}

template <typename T, typename Member>
Rule<T> Bool(Member member) {
  return {false,
          [member](const json& v, const std::string& path, T* t, Problems* p) {
            if (!v.is_boolean()) {
              p->push_back({path, "must be true or false"});
              return;
            }
            member(*t) = v.get<bool>();
          }};
}

// `v` as an integer in [min, max], or nullopt with the problem recorded.
std::optional<int64_t> IntegerIn(const json& v, int64_t min, int64_t max,
                                 const std::string& path, Problems* p) {
  if (!v.is_number_integer()) {
    p->push_back({path, "must be an integer"});
    return std::nullopt;
  }
  // Unsigned values that do not fit an int64 can only be too big.
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() > static_cast<uint64_t>(max)) {
    p->push_back({path, "must be <= " + std::to_string(max)});
    return std::nullopt;
  }
  const int64_t n = v.get<int64_t>();
  if (n < min) {
    p->push_back({path, "must be >= " + std::to_string(min)});
    return std::nullopt;
  }
  if (n > max) {
    p->push_back({path, "must be <= " + std::to_string(max)});
    return std::nullopt;
  }
  return n;
}

template <typename T, typename Member>
Rule<T> Integer(Member member, int64_t min,
                int64_t max = std::numeric_limits<int64_t>::max()) {
  return {false,
          [=](const json& v, const std::string& path, T* t, Problems* p) {
            if (std::optional<int64_t> n = IntegerIn(v, min, max, path, p)) {
              using Field = std::remove_cvref_t<decltype(member(*t))>;
              member(*t) = static_cast<Field>(*n);
            }
          }};
}

template <typename T, typename Member>
Rule<T> Number(Member member, double min,
               double max = std::numeric_limits<double>::max()) {
  return {false,
          [=](const json& v, const std::string& path, T* t, Problems* p) {
            if (!v.is_number()) {
              p->push_back({path, "must be a number"});
              return;
            }
            const double d = v.get<double>();
            if (!std::isfinite(d)) {
              p->push_back({path, "must be finite"});
            } else if (d < min) {
              p->push_back({path, "must be >= " + Text(min)});
            } else if (d > max) {
              p->push_back({path, "must be <= " + Text(max)});
            } else {
              member(*t) = d;
            }
          }};
}

template <typename T, typename Member>
Rule<T> StringList(Member member) {
  return {false,
          [member](const json& v, const std::string& path, T* t, Problems* p) {
            bool ok = v.is_array();
            for (size_t i = 0; ok && i < v.size(); ++i) {
              ok = v[i].is_string();
            }
            if (!ok) {
              p->push_back({path, "must be an array of strings"});
              return;
            }
            member(*t) = v.get<std::vector<std::string>>();
          }};
}

// actions.exec.allow: absolute paths, since a relative name would be
// looked up in whatever PATH the server has.
void ApplyExecAllow(const json& v, const std::string& path, Config* c,
                    Problems* p) {
  bool ok = v.is_array();
  for (size_t i = 0; ok && i < v.size(); ++i) {
    ok =
        v[i].is_string() && v[i].get_ref<const std::string&>().starts_with('/');
  }
  if (!ok) {
    p->push_back({path, "must be an array of absolute paths of executables"});
    return;
  }
  c->actions.exec.allow = v.get<std::vector<std::string>>();
}

// actions.exec.env_allow and .params_env_allow: variable names, which
// cannot hold '='. The loader's (LD_*) are never a client's to set.
template <std::vector<std::string> ExecPolicy::*kList>
void ApplyVariableNames(const json& v, const std::string& path, Config* c,
                        Problems* p) {
  bool ok = v.is_array();
  for (size_t i = 0; ok && i < v.size(); ++i) {
    ok = v[i].is_string() && !v[i].get_ref<const std::string&>().empty() &&
         v[i].get_ref<const std::string&>().find('=') == std::string::npos;
  }
  if (!ok) {
    p->push_back({path, "must be an array of environment variable names"});
    return;
  }
  auto names = v.get<std::vector<std::string>>();
  if (kList == &ExecPolicy::params_env_allow) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i].starts_with("LD_")) {
        p->push_back({path + "[" + std::to_string(i) + "]",
                      "variables of the dynamic loader (LD_*) cannot be "
                      "allowed: through them an allowed program would load "
                      "any code"});
        return;
      }
    }
  }
  c->actions.exec.*kList = std::move(names);
}

void ApplyExecCwd(const json& v, const std::string& path, Config* c,
                  Problems* p) {
  if (!v.is_string() || !v.get_ref<const std::string&>().starts_with('/')) {
    p->push_back({path, "must be an absolute path"});
    return;
  }
  c->actions.exec.cwd = v.get<std::string>();
}

void ApplyExecUser(const json& v, const std::string& path, Config* c,
                   Problems* p) {
  if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
    p->push_back({path, "must be a user name"});
    return;
  }
  c->actions.exec.user = v.get<std::string>();
}

// actions.http.allow and .deny: addresses, CIDRs and host names, each
// parsed as the engine will (destination_policy.h).
template <std::vector<std::string> HttpPolicy::*kList>
void ApplyDestinations(const json& v, const std::string& path, Config* c,
                       Problems* p) {
  if (!v.is_array()) {
    p->push_back({path, "must be an array of addresses, CIDRs and host names"});
    return;
  }
  std::vector<std::string> entries;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) {
      p->push_back({at, "must be a string"});
      return;
    }
    auto rule = ParseDestinationRule(v[i].get_ref<const std::string&>());
    if (!rule.ok()) {
      p->push_back({at, rule.status().message()});
      return;
    }
    entries.push_back(v[i].get<std::string>());
  }
  c->actions.http.*kList = std::move(entries);
}

// auth.tokens: [{"name", "sha256", "scopes"}], names unique.
void ApplyTokens(const json& v, const std::string& path, Config* c,
                 Problems* p) {
  if (!v.is_array()) {
    p->push_back({path, "must be an array of {name, sha256, scopes}"});
    return;
  }
  std::vector<TokenConfig> tokens;
  std::set<std::string> names;
  const size_t before = p->size();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    const json& t = v[i];
    if (!t.is_object()) {
      p->push_back({at, "must be an object {name, sha256, scopes}"});
      continue;
    }
    for (const auto& [key, value] : t.items()) {
      if (key != "name" && key != "sha256" && key != "scopes") {
        p->push_back({at + "." + key, "unknown key (name, sha256, scopes)"});
      }
    }
    TokenConfig token;
    const json name = t.value("name", json());
    if (!name.is_string()) {
      p->push_back({at + ".name", "must be a string"});
    } else if (std::string why = TokenNameProblem(name.get<std::string>());
               !why.empty()) {
      p->push_back({at + ".name", why});
    } else if (!names.insert(name.get<std::string>()).second) {
      p->push_back({at + ".name", "'" + name.get<std::string>() +
                                      "' names another token already"});
    } else {
      token.name = name.get<std::string>();
    }
    const json hash = t.value("sha256", json());
    const bool hex =
        hash.is_string() && hash.get_ref<const std::string&>().size() == 64 &&
        std::all_of(hash.get_ref<const std::string&>().begin(),
                    hash.get_ref<const std::string&>().end(),
                    [](char ch) { return std::isxdigit(ch) != 0; });
    if (!hex) {
      p->push_back({at + ".sha256",
                    "must be the SHA-256 of the token in 64 hex digits "
                    "(printf %s TOKEN | sha256sum); never the token itself"});
    } else {
      token.sha256 = hash.get<std::string>();
      std::transform(token.sha256.begin(), token.sha256.end(),
                     token.sha256.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
    }
    const json scopes = t.value("scopes", json());
    if (!scopes.is_array() || scopes.empty()) {
      p->push_back({at + ".scopes",
                    "must be a non-empty array of read, run, define, admin"});
    } else {
      for (const json& s : scopes) {
        auto scope =
            s.is_string() ? ScopeFromName(s.get<std::string>()) : std::nullopt;
        if (!scope) {
          p->push_back({at + ".scopes", "unknown scope " + s.dump() +
                                            " (read, run, define, admin)"});
          break;
        }
        token.scopes.Add(*scope);
      }
    }
    tokens.push_back(std::move(token));
  }
  if (p->size() == before) c->auth_tokens = std::move(tokens);
}

// "HOST:PORT", "[V6]:PORT" or "none".
void ApplyListen(const json& v, const std::string& path, Config* c,
                 Problems* p) {
  if (!v.is_string()) {
    p->push_back({path, "must be a string"});
    return;
  }
  const std::string s = v.get<std::string>();
  if (s == "none") {
    c->http.enabled = false;
    return;
  }
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size()) {
    p->push_back({path, "'" + s + "' is not HOST:PORT or none"});
    return;
  }
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  for (char ch : s.substr(colon + 1)) {
    if (ch < '0' || ch > '9' || port > 65535) {
      port = -1;
      break;
    }
    port = port * 10 + (ch - '0');
  }
  if (port < 0 || port > 65535) {
    p->push_back({path, "bad port in '" + s + "' (0..65535)"});
    return;
  }
  c->http.enabled = true;
  c->http.host = host.empty() ? "127.0.0.1" : host;
  c->http.port = port;
}

void ApplyLogLevel(const json& v, const std::string& path, Config* c,
                   Problems* p) {
  Result<LogLevel> level = v.is_string()
                               ? ParseLogLevel(v.get<std::string>())
                               : Result<LogLevel>(Status::InvalidArgument(""));
  if (!level.ok()) {
    p->push_back({path, "must be one of trace, debug, info, warn, error, off"});
    return;
  }
  c->log.level = *level;
}

// engine.commit_poll: a mode; true and false, from when it was a switch,
// still mean always and off.
void ApplyCommitPoll(const json& v, const std::string& path, Config* c,
                     Problems* p) {
  Result<CommitPolling> polling =
      v.is_boolean()
          ? Result<CommitPolling>(v.get<bool>() ? CommitPolling::kAlways
                                                : CommitPolling::kOff)
      : v.is_string() ? ParseCommitPolling(v.get<std::string>())
                      : Result<CommitPolling>(Status::InvalidArgument(""));
  if (!polling.ok()) {
    p->push_back({path, "must be one of off, adaptive, always"});
    return;
  }
  c->commit_poll = *polling;
}

void ApplyLogFormat(const json& v, const std::string& path, Config* c,
                    Problems* p) {
  if (v != "json" && v != "text") {
    p->push_back({path, "must be \"json\" or \"text\""});
    return;
  }
  c->log.format = v.get<std::string>();
}

// Checks `v`, an object with the keys of `rules`, into *target.
template <typename T>
void ApplyObject(const json& v, const std::string& path, const Rules<T>& rules,
                 T* target, Problems* p) {
  if (!v.is_object()) {
    p->push_back({path, "must be an object"});
    return;
  }
  for (const auto& [key, value] : v.items()) {
    const std::string sub = path + "." + key;
    bool known = false;
    for (const NamedRule<T>& r : rules) {
      if (r.name != key) continue;
      r.rule.apply(value, sub, target, p);
      known = true;
    }
    if (!known) p->push_back({sub, "unknown key"});
  }
}

const Rules<RatePolicy>& RateRules() {
  static const auto* rules = new Rules<RatePolicy>{
      {"rate_per_sec", Number<RatePolicy>(CDE_MEMBER(rate_per_sec), 0)},
      {"burst", Integer<RatePolicy>(CDE_MEMBER(burst), 1, UINT32_MAX)},
  };
  return *rules;
}

const Rules<BreakerPolicy>& BreakerRules() {
  using B = BreakerPolicy;
  static const auto* rules = new Rules<B>{
      {"failure_threshold",
       Integer<B>(CDE_MEMBER(failure_threshold), 0, UINT32_MAX)},
      {"failure_ratio", Number<B>(CDE_MEMBER(failure_ratio), 0, 1)},
      {"min_calls", Integer<B>(CDE_MEMBER(min_calls), 1, UINT32_MAX)},
      {"window_ms", Integer<B>(CDE_MEMBER(window_ms), 1)},
      {"cool_down_ms", Integer<B>(CDE_MEMBER(cool_down_ms), 1)},
      {"half_open_probes",
       Integer<B>(CDE_MEMBER(half_open_probes), 1, UINT32_MAX)},
  };
  return *rules;
}

// An object whose keys the user names (a rate_limit key, a workflow, a
// breaker key); each value is checked by `entry` into a V that starts as
// `initial(config)`. Entries with problems are left out.
template <typename V, typename Member, typename Initial, typename Entry>
Rule<Config> NamedEntries(Member member, Initial initial, Entry entry) {
  return {false,
          [=](const json& v, const std::string& path, Config* c, Problems* p) {
            if (!v.is_object()) {
              p->push_back({path, "must be an object"});
              return;
            }
            std::map<std::string, V> out;
            for (const auto& [name, value] : v.items()) {
              if (name.empty()) {
                p->push_back({path, "keys must be non-empty strings"});
                continue;
              }
              V item = initial(*c);
              const size_t before = p->size();
              entry(value, path + "." + name, &item, p);
              if (p->size() == before) out[name] = item;
            }
            member(*c) = std::move(out);
          }};
}

struct Key {
  std::string path;  // "http.listen"
  Rule<Config> rule;
};

// The rules of `sub` as keys under `prefix`, stored into member(config).
template <typename T, typename Member>
void AddSection(const std::string& prefix, const Rules<T>& sub, Member member,
                std::vector<Key>* keys) {
  for (const NamedRule<T>& r : sub) {
    keys->push_back({prefix + "." + r.name,
                     {r.rule.string,
                      [apply = r.rule.apply, member](
                          const json& v, const std::string& path, Config* c,
                          Problems* p) { apply(v, path, &member(*c), p); }}});
  }
}

std::vector<Key> BuildSchema() {
  using C = Config;
  std::vector<Key> keys = {
      {"data_dir", String<C>(CDE_MEMBER(data_dir))},
      {"workflows_dir", String<C>(CDE_MEMBER(workflows_dir))},
      {"sync", Bool<C>(CDE_MEMBER(sync))},
      {"stdio", Bool<C>(CDE_MEMBER(stdio))},
      {"http.listen", {true, ApplyListen}},
      {"http.allowed_origins", StringList<C>(CDE_MEMBER(http.allowed_origins))},
      {"http.auth_tokens_file", String<C>(CDE_MEMBER(http.auth_tokens_file))},
      {"http.max_message_bytes",
       Integer<C>(CDE_MEMBER(http.max_message_bytes), 1024, int64_t{1} << 30)},
      {"http.max_sessions",
       Integer<C>(CDE_MEMBER(http.max_sessions), 1, 10'000'000)},
      {"http.max_sessions_per_client",
       Integer<C>(CDE_MEMBER(http.max_sessions_per_client), 1, 10'000'000)},
      {"mcp.workflow_tools", Bool<C>(CDE_MEMBER(mcp.workflow_tools))},
      {"log.level", {true, ApplyLogLevel}},
      {"log.format", {true, ApplyLogFormat}},
      {"log.file", String<C>(CDE_MEMBER(log.file))},
      {"log.async", Bool<C>(CDE_MEMBER(log.async))},
      {"shutdown.timeout_ms", Integer<C>(CDE_MEMBER(shutdown_timeout_ms), 0)},
      {"engine.timer_window_ms", Integer<C>(CDE_MEMBER(timer_window_ms), 1000)},
      {"engine.wal_spare_mb", Integer<C>(CDE_MEMBER(wal_spare_mb), 0, 4096)},
      {"engine.commit_pipeline", Bool<C>(CDE_MEMBER(commit_pipeline))},
      {"engine.commit_poll", {false, ApplyCommitPoll}},
  };
  AddSection("limits.inbound", RateRules(), CDE_MEMBER(limits.inbound), &keys);
  keys.push_back(
      {"limits.outbound",
       NamedEntries<RatePolicy>(
           CDE_MEMBER(limits.outbound), [](const C&) { return RatePolicy(); },
           [](const json& v, const std::string& path, RatePolicy* r,
              Problems* p) { ApplyObject(v, path, RateRules(), r, p); })});
  keys.push_back(
      {"limits.max_concurrency",
       NamedEntries<uint32_t>(
           CDE_MEMBER(limits.max_concurrency), [](const C&) { return 0u; },
           [](const json& v, const std::string& path, uint32_t* n,
              Problems* p) {
             if (auto i = IntegerIn(v, 1, UINT32_MAX, path, p)) {
               *n = static_cast<uint32_t>(*i);
             }
           })});
  // Sizes: at least what a small workflow needs, at most what the store can
  // hold in one record with room to spare.
  constexpr int64_t kMaxBytes = int64_t{1} << 30;
  keys.push_back(
      {"limits.definition_bytes",
       Integer<C>(CDE_MEMBER(limits.definition_bytes), 1024, kMaxBytes)});
  keys.push_back({"limits.definition_steps",
                  Integer<C>(CDE_MEMBER(limits.definition_steps), 1,
                             kMaxDefinitionSteps)});
  keys.push_back({"limits.branches",
                  Integer<C>(CDE_MEMBER(limits.branches), 1, kMaxBranches)});
  keys.push_back({"limits.map_items",
                  Integer<C>(CDE_MEMBER(limits.map_items), 1, kMaxMapItems)});
  keys.push_back({"limits.input_bytes",
                  Integer<C>(CDE_MEMBER(limits.input_bytes), 2, kMaxBytes)});
  keys.push_back({"limits.output_bytes",
                  Integer<C>(CDE_MEMBER(limits.output_bytes), 4, kMaxBytes)});
  keys.push_back({"limits.stopped_attempt_wait_ms",
                  Integer<C>(CDE_MEMBER(limits.stopped_attempt_wait_ms), 1,
                             int64_t{86'400'000})});
  // Before "keys": their entries start from the configured default.
  AddSection("circuit_breakers.default", BreakerRules(),
             CDE_MEMBER(breaker_default), &keys);
  keys.push_back(
      {"circuit_breakers.keys",
       NamedEntries<BreakerPolicy>(
           CDE_MEMBER(breakers), [](const C& c) { return c.breaker_default; },
           [](const json& v, const std::string& path, BreakerPolicy* b,
              Problems* p) { ApplyObject(v, path, BreakerRules(), b, p); })});
  keys.push_back(
      {"actions.exec.clients", Bool<C>(CDE_MEMBER(actions.exec.clients))});
  keys.push_back({"actions.exec.allow", {false, ApplyExecAllow}});
  keys.push_back({"actions.exec.env_allow",
                  {false, ApplyVariableNames<&ExecPolicy::env_allow>}});
  keys.push_back({"actions.exec.params_env_allow",
                  {false, ApplyVariableNames<&ExecPolicy::params_env_allow>}});
  keys.push_back({"actions.exec.cwd", {true, ApplyExecCwd}});
  keys.push_back({"actions.exec.user", {true, ApplyExecUser}});
  // Up to 2^40: far beyond any machine, far from uint64 overflow in bytes.
  constexpr int64_t kLimitMax = int64_t{1} << 40;
  keys.push_back(
      {"actions.exec.limits.cpu_seconds",
       Integer<C>(CDE_MEMBER(actions.exec.limits.cpu_seconds), 0, kLimitMax)});
  keys.push_back({"actions.exec.limits.address_space_mb",
                  Integer<C>(CDE_MEMBER(actions.exec.limits.address_space_mb),
                             0, kLimitMax)});
  keys.push_back(
      {"actions.exec.limits.file_size_mb",
       Integer<C>(CDE_MEMBER(actions.exec.limits.file_size_mb), 0, kLimitMax)});
  keys.push_back(
      {"actions.exec.limits.processes",
       Integer<C>(CDE_MEMBER(actions.exec.limits.processes), 0, kLimitMax)});
  keys.push_back(
      {"actions.http.allow", {false, ApplyDestinations<&HttpPolicy::allow>}});
  keys.push_back(
      {"actions.http.deny", {false, ApplyDestinations<&HttpPolicy::deny>}});
  keys.push_back({"auth.tokens", {false, ApplyTokens}});
  keys.push_back({"secrets.env", StringList<C>(CDE_MEMBER(secrets.env))});
  keys.push_back({"secrets.file", String<C>(CDE_MEMBER(secrets.file))});
  keys.push_back({"secrets.clients", Bool<C>(CDE_MEMBER(secrets.clients))});
  keys.push_back({"alerts.workflow_failures.threshold",
                  Integer<C>(CDE_MEMBER(alerts.workflow_failures_threshold), 0,
                             UINT32_MAX)});
  keys.push_back(
      {"alerts.workflow_failures.window_ms",
       Integer<C>(CDE_MEMBER(alerts.workflow_failures_window_ms), 1)});
  return keys;
}

#undef CDE_MEMBER

// The one description of the file: the parser, the unknown-key check and
// the environment variables all come from it.
const std::vector<Key>& Schema() {
  static const auto* schema = new std::vector<Key>(BuildSchema());
  return *schema;
}

bool IsKey(const std::string& path) {
  for (const Key& k : Schema()) {
    if (k.path == path) return true;
  }
  return false;
}

// An object that groups keys ("http", "limits.inbound").
bool IsSection(const std::string& path) {
  for (const Key& k : Schema()) {
    if (k.path.size() > path.size() &&
        k.path.compare(0, path.size(), path) == 0 &&
        k.path[path.size()] == '.') {
      return true;
    }
  }
  return false;
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = path.find('.', start)) != std::string::npos;
       start = dot + 1) {
    parts.push_back(path.substr(start, dot - start));
  }
  parts.push_back(path.substr(start));
  return parts;
}

const json* Find(const json& doc, const std::string& path) {
  const json* at = &doc;
  for (const std::string& part : Split(path)) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(part);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

void CheckSections(const json& object, const std::string& prefix, Problems* p) {
  for (const auto& [key, value] : object.items()) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    // A dotted name ("http.listen" at the top) would pass for the key but
    // never be read.
    const bool plain = key.find('.') == std::string::npos;
    if (plain && IsKey(path)) continue;
    if (!plain || !IsSection(path)) {
      p->push_back({path, "unknown key"});
    } else if (!value.is_object()) {
      p->push_back({path, "must be an object"});
    } else {
      CheckSections(value, path, p);
    }
  }
}

Problems Check(const json& doc, Config* out) {
  Problems problems;
  Config c;
  if (!doc.is_null() && !doc.is_object()) {
    problems.push_back({"", "must be a JSON object"});
    return problems;
  }
  if (doc.is_object()) {
    CheckSections(doc, "", &problems);
    for (const Key& k : Schema()) {
      if (const json* v = Find(doc, k.path)) {
        k.rule.apply(*v, k.path, &c, &problems);
      }
    }
  }
  *out = std::move(c);
  return problems;
}

std::string Join(const Problems& problems) {
  std::string out;
  for (const Problem& p : problems) {
    if (!out.empty()) out += "; ";
    out += p.path.empty() ? p.what : p.path + ": " + p.what;
  }
  return out;
}

// "CDE_" + the path in capitals with "_" for ".".
std::string VariableFor(const std::string& path) {
  std::string name = "CDE_";
  for (char ch : path) {
    name += ch == '.' ? '_' : static_cast<char>(std::toupper(ch));
  }
  return name;
}

struct Override {
  std::string path;
  std::string variable;
};

// Sets doc at `path`, creating the objects on the way. False when the
// document has a non-object there: the check then reports the file's value.
bool Set(json* doc, const std::string& path, json value) {
  json* at = doc;
  for (const std::string& part : Split(path)) {
    if (!at->is_object()) return false;
    at = &(*at)[part];
    if (at->is_null()) *at = json::object();
  }
  *at = std::move(value);
  return true;
}

// Applies the CDE_ variables of `env` to `doc`: sections before their keys,
// so that CDE_HTTP replaces "http" and CDE_HTTP_LISTEN then still applies.
std::vector<Override> ApplyEnvironment(
    const std::map<std::string, std::string>& env, json* doc) {
  std::vector<Override> applied;
  std::vector<std::string> seen;
  auto apply = [&](const std::string& path, bool string) {
    for (const std::string& s : seen) {
      if (s == path) return;
    }
    seen.push_back(path);
    const std::string variable = VariableFor(path);
    auto it = env.find(variable);
    if (it == env.end()) return;
    json value = string ? json(it->second) : ParseBoundedJson(it->second);
    // Not JSON: as a string, so the check says which type was wanted.
    if (value.is_discarded()) value = it->second;
    if (Set(doc, path, std::move(value))) applied.push_back({path, variable});
  };
  for (const Key& k : Schema()) {
    const std::vector<std::string> parts = Split(k.path);
    std::string section;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      section += (i ? "." : "") + parts[i];
      apply(section, false);
    }
    apply(k.path, k.rule.string);
  }
  return applied;
}

// Problems in values that came from a variable are named after it.
bool NameVariables(const std::vector<Override>& overrides, Problems* problems) {
  bool any_from_file = false;
  for (Problem& p : *problems) {
    const Override* best = nullptr;
    for (const Override& o : overrides) {
      const bool under =
          p.path == o.path ||
          p.path.compare(0, o.path.size() + 1, o.path + ".") == 0;
      if (under && (!best || o.path.size() > best->path.size())) best = &o;
    }
    if (!best) {
      any_from_file = true;
    } else if (p.path == best->path) {
      p.path = best->variable;
    } else {
      p.path = best->variable + ": " + p.path;
    }
  }
  return any_from_file;
}

// The contents of `path`, or an IOError saying why not (strerror).
Result<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::IOError(std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const int error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (error != 0) return Status::IOError(std::strerror(error));
  return text;
}

Result<json> ParseFile(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return Status::InvalidArgument(path +
                                   ": cannot read: " + text.status().message());
  }
  if (const size_t depth = JsonTextDepth(*text); depth > kMaxJsonDepth) {
    return Status::InvalidArgument(path + ": " + TooDeepMessage(depth));
  }
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    // what() is "[json.exception.parse_error.101] parse error at line 3,
    // column 7: ..."; the bracketed id means nothing to a user.
    std::string what = e.what();
    if (!what.empty() && what[0] == '[') {
      const size_t end = what.find("] ");
      if (end != std::string::npos) what = what.substr(end + 2);
    }
    return Status::InvalidArgument(path + ": invalid JSON: " + what);
  }
}

}  // namespace

Result<Config> ParseConfig(const json& doc) {
  Config config;
  Problems problems = Check(doc, &config);
  if (!problems.empty()) {
    return Status::InvalidArgument("invalid configuration: " + Join(problems));
  }
  return config;
}

Result<Config> LoadConfig(const std::string& path,
                          const std::map<std::string, std::string>& env) {
  json doc = json::object();
  if (!path.empty()) {
    Result<json> file = ParseFile(path);
    if (!file.ok()) return file.status();
    doc = std::move(file).value();
    if (doc.is_null()) doc = json::object();
  }
  const std::vector<Override> overrides = ApplyEnvironment(env, &doc);
  Config config;
  Problems problems = Check(doc, &config);
  if (problems.empty()) return config;
  const bool from_file = NameVariables(overrides, &problems);
  return Status::InvalidArgument(
      (from_file && !path.empty() ? path + ": " : std::string()) +
      "invalid configuration: " + Join(problems));
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

bool IsLoopbackHost(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 &&
         IN6_IS_ADDR_LOOPBACK(&v6);
}

Result<std::vector<TokenConfig>> TokensOf(const Config& config) {
  std::vector<TokenConfig> tokens = config.auth_tokens;
  if (config.http.auth_tokens_file.empty()) return tokens;
  auto file = ReadTokenFile(config.http.auth_tokens_file);
  if (!file.ok()) return file.status();
  int n = 0;
  for (const std::string& secret : *file) {
    tokens.push_back({"tokens-file-" + std::to_string(++n), Sha256Hex(secret),
                      ScopeSet::All()});
  }
  return tokens;
}

Result<std::set<std::string>> ReadTokenFile(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return Status::InvalidArgument("cannot read " + path + ": " +
                                   text.status().message());
  }
  std::set<std::string> tokens;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') continue;
    tokens.insert(line);
  }
  if (tokens.empty()) return Status::InvalidArgument("no token in " + path);
  return tokens;
}

std::vector<std::string> KeysNeedingRestart(const Config& running,
                                            const Config& reloaded) {
  const Config& a = running;
  const Config& b = reloaded;
  std::vector<std::string> keys;
  auto check = [&keys](bool changed, const char* key) {
    if (changed) keys.push_back(key);
  };
  check(a.data_dir != b.data_dir, "data_dir");
  check(a.sync != b.sync, "sync");
  check(a.stdio != b.stdio, "stdio");
  check(a.http.enabled != b.http.enabled || a.http.host != b.http.host ||
            a.http.port != b.http.port,
        "http.listen");
  check(a.http.allowed_origins != b.http.allowed_origins,
        "http.allowed_origins");
  check(a.http.auth_tokens_file != b.http.auth_tokens_file,
        "http.auth_tokens_file");
  check(a.http.max_message_bytes != b.http.max_message_bytes,
        "http.max_message_bytes");
  check(a.http.max_sessions != b.http.max_sessions, "http.max_sessions");
  check(a.http.max_sessions_per_client != b.http.max_sessions_per_client,
        "http.max_sessions_per_client");
  check(a.mcp.workflow_tools != b.mcp.workflow_tools, "mcp.workflow_tools");
  check(a.log.format != b.log.format, "log.format");
  check(a.log.file != b.log.file, "log.file");
  check(a.log.async != b.log.async, "log.async");
  check(a.timer_window_ms != b.timer_window_ms, "engine.timer_window_ms");
  check(a.wal_spare_mb != b.wal_spare_mb, "engine.wal_spare_mb");
  check(a.commit_pipeline != b.commit_pipeline, "engine.commit_pipeline");
  check(a.commit_poll != b.commit_poll, "engine.commit_poll");
  check(a.actions.exec.clients != b.actions.exec.clients,
        "actions.exec.clients");
  check(a.actions.exec.allow != b.actions.exec.allow, "actions.exec.allow");
  check(a.actions.exec.env_allow != b.actions.exec.env_allow,
        "actions.exec.env_allow");
  check(a.actions.exec.params_env_allow != b.actions.exec.params_env_allow,
        "actions.exec.params_env_allow");
  check(a.actions.exec.cwd != b.actions.exec.cwd, "actions.exec.cwd");
  check(a.actions.exec.user != b.actions.exec.user, "actions.exec.user");
  check(a.actions.exec.limits != b.actions.exec.limits, "actions.exec.limits");
  check(a.actions.http.allow != b.actions.http.allow, "actions.http.allow");
  check(a.actions.http.deny != b.actions.http.deny, "actions.http.deny");
  check(a.auth_tokens != b.auth_tokens, "auth.tokens");
  check(a.secrets.env != b.secrets.env, "secrets.env");
  check(a.secrets.file != b.secrets.file, "secrets.file");
  check(a.secrets.clients != b.secrets.clients, "secrets.clients");
  return keys;
}

}  // namespace cde
