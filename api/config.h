// Config: everything `cde-orchestrator serve` can be told, from one JSON
// file (--config), the environment (CDE_...) and the command line, in that
// order of precedence (the command line wins). docs/configuration.md lists
// every key with its default.
//
//   {
//     "data_dir": "./cde-data",
//     "workflows_dir": "",
//     "sync": true,
//     "stdio": false,
//     "http": {"listen": "127.0.0.1:8000", "allowed_origins": [],
//              "auth_tokens_file": "", "max_message_bytes": 4194304},
//     "log": {"level": "info", "format": "json", "file": "", "async": true},
//     "shutdown": {"timeout_ms": 30000},
//     "engine": {"timer_window_ms": 60000, "wal_spare_mb": 32},
//     "limits": {
//       "inbound": {"rate_per_sec": 0, "burst": 1},
//       "outbound": {"flights-api": {"rate_per_sec": 50, "burst": 10}},
//       "max_concurrency": {"trip-booking": 100}
//     },
//     "circuit_breakers": {
//       "default": {"failure_threshold": 5, "failure_ratio": 0.5,
//                   "min_calls": 20, "window_ms": 60000,
//                   "cool_down_ms": 30000, "half_open_probes": 1},
//       "keys": {"flights-api": {"cool_down_ms": 5000}}
//     },
//     "alerts": {"workflow_failures": {"threshold": 10, "window_ms": 60000}},
//     "actions": {"exec": {"clients": false, "allow": []},
//                 "http": {"allow": [], "deny": []}},
//     "auth": {"tokens": [{"name": "ci-bot", "sha256": "<hex>",
//                          "scopes": ["read", "run"]}]}
//   }
//
// Every key is optional. Unknown keys, wrong types and out-of-range values
// are errors naming the key ("limits.inbound.burst: must be >= 1").
// A breaker entry under "keys" overrides only the fields it names; the rest
// come from "default".
//
// Environment: each key has a variable named CDE_ + its path in capitals
// with "_" between the parts (CDE_LOG_LEVEL, CDE_HTTP_LISTEN,
// CDE_SHUTDOWN_TIMEOUT_MS, CDE_LIMITS_INBOUND_RATE_PER_SEC, ...). Strings
// are taken as they are; numbers, booleans, arrays and objects are parsed
// as JSON (CDE_LIMITS_OUTBOUND='{"flights-api":{"rate_per_sec":5}}'). An
// object-valued variable replaces that whole object. CDE_ variables that
// name no key are ignored (other tools share the prefix, e.g.
// CDE_ADMIN_TOKEN).
#ifndef CDE_API_CONFIG_H_
#define CDE_API_CONFIG_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "api/auth.h"
#include "engine/action_policy.h"
#include "engine/commit_polling.h"
#include "engine/limits.h"
#include "engine/log.h"
#include "engine/secrets.h"
#include "storage/status.h"

namespace cde {

struct HttpConfig {
  bool enabled = true;  // "listen": "none" turns it off
  std::string host = "127.0.0.1";
  int port = 8000;
  // Browser origins allowed besides localhost ones ("*": any).
  std::vector<std::string> allowed_origins;
  // Deprecated (auth.tokens replaces it): "" = none; else a file of bearer
  // tokens in plain text, one per line ('#' comments and blank lines
  // skipped), each with every scope.
  std::string auth_tokens_file;
  // The MCP session table (McpHttpOptions): its size, and what one client
  // (a token, or without tokens an address) may hold of it.
  uint64_t max_sessions = 10000;
  uint64_t max_sessions_per_client = 1000;
  size_t max_message_bytes = 4 << 20;  // 1 KiB .. 1 GiB

  friend bool operator==(const HttpConfig&, const HttpConfig&) = default;
};

struct LimitsConfig {
  // Per bearer token over HTTP (per MCP session when no tokens are set),
  // per session over stdio. Unlimited by default.
  RatePolicy inbound;
  // Token buckets by a step's `rate_limit` key. Keys not listed here are
  // not limited.
  std::map<std::string, RatePolicy> outbound;
  // Max running sagas by workflow name; overrides the definition's
  // max_concurrency (>= 1).
  std::map<std::string, uint32_t> max_concurrency;
  // Sizes as compact JSON text (EngineLimits says what each refuses).
  uint64_t definition_bytes = uint64_t{1} << 20;
  uint32_t definition_steps = 256;
  uint32_t branches = 32;
  uint32_t map_items = 10000;
  uint64_t input_bytes = uint64_t{256} << 10;
  uint64_t output_bytes = uint64_t{256} << 10;
  int64_t stopped_attempt_wait_ms = 60000;

  friend bool operator==(const LimitsConfig&, const LimitsConfig&) = default;
};

struct AlertConfig {
  // A workflow whose sagas fail (end compensated or parked) this many times
  // within window_ms logs one warning per window. 0 = no alert.
  uint32_t workflow_failures_threshold = 10;
  int64_t workflow_failures_window_ms = 60000;

  friend bool operator==(const AlertConfig&, const AlertConfig&) = default;
};

// What MCP offers besides its fixed tools (mcp.*).
struct McpConfig {
  // Each registered workflow as a tool of its own, run_<workflow>.
  bool workflow_tools = true;

  friend bool operator==(const McpConfig&, const McpConfig&) = default;
};

struct Config {
  std::string data_dir = "./cde-data";
  std::string workflows_dir;  // "" = none
  bool sync = true;
  bool stdio = false;
  HttpConfig http;
  McpConfig mcp;
  LogOptions log;
  int64_t shutdown_timeout_ms = 30000;  // >= 0
  int64_t timer_window_ms = 60000;      // >= 1000
  int64_t wal_spare_mb = 32;            // 0 to 4096
  bool commit_pipeline = false;         // EngineOptions::commit_pipeline
  // EngineOptions::commit_poll
  CommitPolling commit_poll = CommitPolling::kAdaptive;
  LimitsConfig limits;
  BreakerPolicy breaker_default;
  std::map<std::string, BreakerPolicy> breakers;  // full policies by key
  AlertConfig alerts;
  // What definitions registered by clients may do (actions.exec.*).
  ActionPolicy actions;
  // Where ${secret.NAME} values come from (secrets.*).
  SecretsOptions secrets;
  // Named bearer tokens with scopes (auth.h), by the SHA-256 of each.
  std::vector<TokenConfig> auth_tokens;

  friend bool operator==(const Config&, const Config&) = default;
};

// `doc` applied over the defaults. InvalidArgument listing every problem,
// each as "path: what is wrong", joined with "; ".
Result<Config> ParseConfig(const nlohmann::json& doc);

// The file at `path` ("" = none: defaults), then the CDE_ variables of
// `env`. Errors name the file (and line/column for bad JSON) or the
// variable.
Result<Config> LoadConfig(const std::string& path,
                          const std::map<std::string, std::string>& env);

// The process environment, for LoadConfig.
std::map<std::string, std::string> ProcessEnvironment();

// Whether `host` (an IP literal, as http.listen takes it) is a loopback
// address: 127.0.0.0/8 or ::1. Only processes of this machine reach those.
bool IsLoopbackHost(const std::string& host);

// Every token the server accepts: auth.tokens, then those of the
// deprecated http.auth_tokens_file (named "tokens-file-1", ..., every
// scope). InvalidArgument if the file cannot be read or holds no token.
Result<std::vector<TokenConfig>> TokensOf(const Config& config);

// The bearer tokens in `path` (see HttpConfig::auth_tokens_file).
// InvalidArgument if it cannot be read or holds no token.
Result<std::set<std::string>> ReadTokenFile(const std::string& path);

// The keys whose change a reload (SIGHUP) cannot apply, as paths
// ("data_dir", "http.listen", ...): they need a restart. A reload may
// change log.level, limits, circuit_breakers, alerts and workflows_dir.
std::vector<std::string> KeysNeedingRestart(const Config& running,
                                            const Config& reloaded);

}  // namespace cde

#endif  // CDE_API_CONFIG_H_
