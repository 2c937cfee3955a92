// The configuration of `cde-orchestrator serve`: the file, the CDE_
// variables, their checks, and what the binary does with a bad file.
#include "api/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

using Env = std::map<std::string, std::string>;

std::string WriteFile(const test::TempDir& dir, const std::string& name,
                      const std::string& text) {
  const std::string path = dir.Sub(name);
  std::ofstream(path) << text;
  return path;
}

// The message of a configuration that must not load, or "loaded".
std::string ErrorOf(const Result<Config>& r) {
  return r.ok() ? "loaded" : r.status().message();
}

std::string ParseError(const json& doc) { return ErrorOf(ParseConfig(doc)); }

TEST(ConfigTest, DefaultsWhenNoFile) {
  Result<Config> c = LoadConfig("", {});
  ASSERT_OK(c.status());
  EXPECT_EQ(*c, Config());
  EXPECT_EQ(c->data_dir, "./cde-data");
  EXPECT_TRUE(c->http.enabled);
  EXPECT_EQ(c->http.port, 8000);
  EXPECT_EQ(c->log.level, LogLevel::kInfo);

  Result<Config> empty = ParseConfig(json::object());
  ASSERT_OK(empty.status());
  EXPECT_EQ(*empty, Config());
}

TEST(ConfigTest, FullFileRoundTripsEveryKey) {
  test::TempDir dir;
  const std::string path = WriteFile(dir, "config.json", R"({
    "data_dir": "/var/lib/cde",
    "workflows_dir": "/etc/cde/workflows",
    "sync": false,
    "stdio": true,
    "http": {"listen": "[::1]:9100", "allowed_origins": ["https://a.example"],
             "auth_tokens_file": "/etc/cde/tokens", "max_message_bytes": 2048,
             "max_sessions": 50, "max_sessions_per_client": 5},
    "log": {"level": "debug", "format": "text", "file": "/var/log/cde.log",
            "async": false},
    "shutdown": {"timeout_ms": 5000},
    "engine": {"timer_window_ms": 120000, "wal_spare_mb": 0,
               "commit_pipeline": true, "commit_poll": "always"},
    "limits": {
      "inbound": {"rate_per_sec": 2.5, "burst": 4},
      "outbound": {"flights-api": {"rate_per_sec": 50, "burst": 10}},
      "max_concurrency": {"trip-booking": 100},
      "definition_bytes": 4096, "definition_steps": 12,
      "input_bytes": 2048, "output_bytes": 8192
    },
    "circuit_breakers": {
      "default": {"failure_threshold": 3, "failure_ratio": 0.25,
                  "min_calls": 8, "window_ms": 1000, "cool_down_ms": 2000,
                  "half_open_probes": 2},
      "keys": {"flights-api": {"failure_threshold": 0, "failure_ratio": 1,
                               "min_calls": 1, "window_ms": 7,
                               "cool_down_ms": 9, "half_open_probes": 3}}
    },
    "alerts": {"workflow_failures": {"threshold": 0, "window_ms": 30000}},
    "mcp": {"workflow_tools": false},
    "actions": {
      "exec": {"clients": true, "allow": ["/usr/bin/convert"],
               "env_allow": ["PATH", "HOME"], "params_env_allow": ["QUALITY"],
               "cwd": "/srv/jobs",
               "user": "cde-jobs",
               "limits": {"cpu_seconds": 5, "address_space_mb": 0,
                          "file_size_mb": 1, "processes": 10}},
      "http": {"allow": ["127.0.0.1", "10.0.0.0/8", "*.internal.example"],
               "deny": ["0.0.0.0/0", "::/0", "db.internal.example"]}
    },
    "secrets": {"env": ["STRIPE_KEY"], "file": "/etc/cde/secrets.json",
                "clients": true}
  })");
  Config want;
  want.data_dir = "/var/lib/cde";
  want.workflows_dir = "/etc/cde/workflows";
  want.sync = false;
  want.stdio = true;
  want.http.host = "::1";
  want.http.port = 9100;
  want.http.allowed_origins = {"https://a.example"};
  want.http.auth_tokens_file = "/etc/cde/tokens";
  want.http.max_message_bytes = 2048;
  want.http.max_sessions = 50;
  want.http.max_sessions_per_client = 5;
  want.log = {LogLevel::kDebug, "text", "/var/log/cde.log", false};
  want.shutdown_timeout_ms = 5000;
  want.timer_window_ms = 120000;
  want.wal_spare_mb = 0;
  want.commit_pipeline = true;
  want.commit_poll = CommitPolling::kAlways;
  want.limits.inbound = {2.5, 4};
  want.limits.outbound = {{"flights-api", {50, 10}}};
  want.limits.max_concurrency = {{"trip-booking", 100}};
  want.limits.definition_bytes = 4096;
  want.limits.definition_steps = 12;
  want.limits.input_bytes = 2048;
  want.limits.output_bytes = 8192;
  want.breaker_default = {3, 0.25, 8, 1000, 2000, 2};
  want.breakers = {{"flights-api", {0, 1, 1, 7, 9, 3}}};
  want.alerts = {0, 30000};
  want.mcp.workflow_tools = false;
  want.actions.exec = {true,         {"/usr/bin/convert"}, {"PATH", "HOME"},
                       {"QUALITY"},  "/srv/jobs",          "cde-jobs",
                       {5, 0, 1, 10}};
  want.secrets = {{"STRIPE_KEY"}, "/etc/cde/secrets.json", true};
  want.actions.http = {{"127.0.0.1", "10.0.0.0/8", "*.internal.example"},
                       {"0.0.0.0/0", "::/0", "db.internal.example"}};

  Result<Config> got = LoadConfig(path, {});
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, want);
}

TEST(ConfigTest, ListenAcceptsHostPortV6AndNone) {
  Result<Config> v4 = ParseConfig({{"http", {{"listen", "0.0.0.0:0"}}}});
  ASSERT_OK(v4.status());
  EXPECT_EQ(v4->http.host, "0.0.0.0");
  EXPECT_EQ(v4->http.port, 0);
  Result<Config> v6 = ParseConfig({{"http", {{"listen", "[::]:65535"}}}});
  ASSERT_OK(v6.status());
  EXPECT_EQ(v6->http.host, "::");
  EXPECT_EQ(v6->http.port, 65535);
  Result<Config> none = ParseConfig({{"http", {{"listen", "none"}}}});
  ASSERT_OK(none.status());
  EXPECT_FALSE(none->http.enabled);

  EXPECT_THAT(ParseError({{"http", {{"listen", "nonsense"}}}}),
              HasSubstr("http.listen: 'nonsense' is not HOST:PORT or none"));
  EXPECT_THAT(ParseError({{"http", {{"listen", "localhost:65536"}}}}),
              HasSubstr("http.listen: bad port"));
  EXPECT_THAT(ParseError({{"http", {{"listen", "localhost:8x"}}}}),
              HasSubstr("http.listen: bad port"));
}

TEST(ConfigTest, EveryKindOfErrorNamesItsKeyAndAllAreReportedTogether) {
  const json doc = {
      {"sync", "yes"},
      {"http", {{"max_message_bytes", 100}, {"allowed_origins", {1}}}},
      {"log", {{"level", "loud"}, {"format", "xml"}}},
      {"shutdown", {{"timeout_ms", "soon"}}},
      {"engine", {{"timer_window_ms", 999}}},
      {"limits",
       {{"inbound", {{"rate_per_sec", -1}, {"burst", 0}}},
        {"outbound", {{"a", {{"burst", 1.5}}}, {"", json::object()}}},
        {"max_concurrency", {{"w", 0}}},
        {"definition_bytes", 10},
        {"definition_steps", 5000},
        {"input_bytes", "1MB"}}},
      {"circuit_breakers",
       {{"default",
         {{"failure_threshold", -1},
          {"failure_ratio", 1.5},
          {"min_calls", 0},
          {"window_ms", 0},
          {"cool_down_ms", 0},
          {"half_open_probes", 0}}},
        {"keys", {{"k", {{"failure_ratio", "half"}}}}}}},
      {"alerts",
       {{"workflow_failures", {{"threshold", -1}, {"window_ms", 0}}}}},
      {"actions",
       {{"exec",
         {{"allow", {"sh"}},
          {"env_allow", {"A=B"}},
          {"params_env_allow", {"OK", "LD_PRELOAD"}},
          {"cwd", "jobs"},
          {"user", ""},
          {"limits", {{"cpu_seconds", -1}, {"processes", "many"}}}}},
        {"http", {{"allow", {"10.0.0.0/33"}}, {"deny", "10.0.0.1"}}}}},
  };
  const std::string error = ParseError(doc);
  EXPECT_THAT(error, StartsWith("invalid configuration: "));
  for (const char* problem : {
           "sync: must be true or false",
           "http.max_message_bytes: must be >= 1024",
           "http.allowed_origins: must be an array of strings",
           "log.level: must be one of trace, debug, info, warn, error, off",
           "log.format: must be \"json\" or \"text\"",
           "shutdown.timeout_ms: must be an integer",
           "engine.timer_window_ms: must be >= 1000",
           "limits.inbound.rate_per_sec: must be >= 0",
           "limits.inbound.burst: must be >= 1",
           "limits.outbound.a.burst: must be an integer",
           "limits.outbound: keys must be non-empty strings",
           "limits.max_concurrency.w: must be >= 1",
           "limits.definition_bytes: must be >= 1024",
           "limits.definition_steps: must be <= 4096",
           "limits.input_bytes: must be an integer",
           "circuit_breakers.default.failure_threshold: must be >= 0",
           "circuit_breakers.default.failure_ratio: must be <= 1",
           "circuit_breakers.default.min_calls: must be >= 1",
           "circuit_breakers.default.window_ms: must be >= 1",
           "circuit_breakers.default.cool_down_ms: must be >= 1",
           "circuit_breakers.default.half_open_probes: must be >= 1",
           "circuit_breakers.keys.k.failure_ratio: must be a number",
           "alerts.workflow_failures.threshold: must be >= 0",
           "alerts.workflow_failures.window_ms: must be >= 1",
           "actions.exec.allow: must be an array of absolute paths",
           "actions.exec.env_allow: must be an array of environment "
           "variable names",
           "actions.exec.params_env_allow[1]: variables of the dynamic "
           "loader (LD_*) cannot be allowed",
           "actions.exec.cwd: must be an absolute path",
           "actions.exec.user: must be a user name",
           "actions.exec.limits.cpu_seconds: must be >= 0",
           "actions.exec.limits.processes: must be an integer",
           "actions.http.allow[0]: '10.0.0.0/33': the prefix length must be "
           "a number from 0 to 32",
           "actions.http.deny: must be an array of addresses, CIDRs and host "
           "names",
       }) {
    EXPECT_THAT(error, HasSubstr(problem));
  }
  EXPECT_THAT(ParseError({{"http", {{"max_message_bytes", 2147483648}}}}),
              HasSubstr("http.max_message_bytes: must be <= 1073741824"));
  EXPECT_THAT(ParseError({{"engine", {{"wal_spare_mb", 4097}}}}),
              HasSubstr("engine.wal_spare_mb: must be <= 4096"));
  EXPECT_THAT(ParseError({{"engine", {{"wal_spare_mb", -1}}}}),
              HasSubstr("engine.wal_spare_mb: must be >= 0"));
  EXPECT_THAT(ParseError({{"shutdown", {{"timeout_ms", 1.5}}}}),
              HasSubstr("shutdown.timeout_ms: must be an integer"));
  EXPECT_THAT(ParseError({{"shutdown", {{"timeout_ms", -1}}}}),
              HasSubstr("shutdown.timeout_ms: must be >= 0"));
  EXPECT_THAT(ParseError({{"http", 8000}}),
              HasSubstr("http: must be an object"));
  EXPECT_THAT(ParseError(json::array()), HasSubstr("must be a JSON object"));
}

TEST(ConfigTest, UnknownKeyIsRejected) {
  EXPECT_EQ(ParseError({{"http", {{"lsten", "127.0.0.1:1"}}}}),
            "invalid configuration: http.lsten: unknown key");
  EXPECT_THAT(ParseError({{"datadir", "x"}}),
              HasSubstr("datadir: unknown key"));
  EXPECT_THAT(ParseError({{"http.listen", "none"}}),
              HasSubstr("http.listen: unknown key"));
  EXPECT_THAT(ParseError({{"limits", {{"outbound", {{"a", {{"rate", 1}}}}}}}}),
              HasSubstr("limits.outbound.a.rate: unknown key"));
  EXPECT_THAT(ParseError({{"circuit_breakers",
                           {{"keys", {{"k", {{"cooldown_ms", 1}}}}}}}}),
              HasSubstr("circuit_breakers.keys.k.cooldown_ms: unknown key"));
}

TEST(ConfigTest, BreakerKeyOverrideInheritsDefaultFields) {
  Result<Config> c =
      ParseConfig({{"circuit_breakers",
                    {{"default", {{"failure_threshold", 7}, {"min_calls", 3}}},
                     {"keys", {{"flights-api", {{"cool_down_ms", 5000}}}}}}}});
  ASSERT_OK(c.status());
  BreakerPolicy want;
  want.failure_threshold = 7;
  want.min_calls = 3;
  EXPECT_EQ(c->breaker_default, want);
  want.cool_down_ms = 5000;
  ASSERT_EQ(c->breakers.count("flights-api"), 1u);
  EXPECT_EQ(c->breakers.at("flights-api"), want);
}

TEST(ConfigTest, EnvironmentOverridesTheFile) {
  test::TempDir dir;
  const std::string path =
      WriteFile(dir, "config.json",
                R"({"data_dir": "/from/file", "shutdown": {"timeout_ms": 1000},
          "limits": {"outbound": {"old": {"rate_per_sec": 1}}}})");
  const Env env = {
      {"CDE_DATA_DIR", "/from/env"},  // strings are taken as they are
      {"CDE_LOG_LEVEL", "debug"},
      {"CDE_HTTP_LISTEN", "none"},
      {"CDE_SHUTDOWN_TIMEOUT_MS", "2500"},
      {"CDE_SYNC", "false"},
      {"CDE_HTTP_ALLOWED_ORIGINS", R"(["https://x.example"])"},
      {"CDE_LIMITS_OUTBOUND", R"({"flights-api":{"rate_per_sec":5}})"},
      {"CDE_CIRCUIT_BREAKERS_DEFAULT", R"({"cool_down_ms":100})"},
      {"CDE_CIRCUIT_BREAKERS_KEYS", R"({"k":{"min_calls":2}})"},
      {"CDE_ALERTS_WORKFLOW_FAILURES_THRESHOLD", "3"},
  };
  Result<Config> c = LoadConfig(path, env);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->data_dir, "/from/env");
  EXPECT_EQ(c->log.level, LogLevel::kDebug);
  EXPECT_FALSE(c->http.enabled);
  EXPECT_EQ(c->shutdown_timeout_ms, 2500);
  EXPECT_FALSE(c->sync);
  EXPECT_THAT(c->http.allowed_origins, ElementsAre("https://x.example"));
  // An object-valued variable replaces the whole object.
  EXPECT_EQ(c->limits.outbound,
            (std::map<std::string, RatePolicy>{{"flights-api", {5, 1}}}));
  EXPECT_EQ(c->breaker_default.cool_down_ms, 100);
  EXPECT_EQ(c->breakers.at("k").cool_down_ms, 100);
  EXPECT_EQ(c->breakers.at("k").min_calls, 2u);
  EXPECT_EQ(c->alerts.workflow_failures_threshold, 3u);
}

TEST(ConfigTest, EnvironmentKeyInsideAnObjectVariableStillApplies) {
  Result<Config> c =
      LoadConfig("", {{"CDE_LIMITS_INBOUND", R"({"rate_per_sec": 1})"},
                      {"CDE_LIMITS_INBOUND_BURST", "9"}});
  ASSERT_OK(c.status());
  EXPECT_EQ(c->limits.inbound, (RatePolicy{1, 9}));
}

TEST(ConfigTest, BadEnvironmentValueNamesTheVariable) {
  EXPECT_EQ(ErrorOf(LoadConfig("", {{"CDE_SHUTDOWN_TIMEOUT_MS", "soon"}})),
            "invalid configuration: CDE_SHUTDOWN_TIMEOUT_MS: must be an "
            "integer");
  EXPECT_EQ(ErrorOf(LoadConfig("", {{"CDE_LOG_LEVEL", "loud"}})),
            "invalid configuration: CDE_LOG_LEVEL: must be one of trace, "
            "debug, info, warn, error, off");
  EXPECT_THAT(
      ErrorOf(
          LoadConfig("", {{"CDE_LIMITS_OUTBOUND", R"({"a":{"burst":0}})"}})),
      HasSubstr("CDE_LIMITS_OUTBOUND: limits.outbound.a.burst: must be >= 1"));
  EXPECT_THAT(ErrorOf(LoadConfig("", {{"CDE_LIMITS_OUTBOUND", "{not json"}})),
              HasSubstr("CDE_LIMITS_OUTBOUND: must be an object"));
  // The file's own problems are still named by key, and the file.
  test::TempDir dir;
  const std::string path =
      WriteFile(dir, "c.json", R"({"engine": {"timer_window_ms": 1}})");
  const std::string both = ErrorOf(LoadConfig(path, {{"CDE_SYNC", "maybe"}}));
  EXPECT_THAT(both, StartsWith(path + ": invalid configuration: "));
  EXPECT_THAT(both, HasSubstr("engine.timer_window_ms: must be >= 1000"));
  EXPECT_THAT(both, HasSubstr("CDE_SYNC: must be true or false"));
}

TEST(ConfigTest, CommitPollIsAModeAndStillTakesTheOldSwitch) {
  EXPECT_EQ(Config().commit_poll, CommitPolling::kAdaptive);
  for (const auto& [value, want] : std::vector<std::pair<json, CommitPolling>>{
           {"off", CommitPolling::kOff},
           {"adaptive", CommitPolling::kAdaptive},
           {"always", CommitPolling::kAlways},
           {true, CommitPolling::kAlways},
           {false, CommitPolling::kOff}}) {
    Result<Config> c = ParseConfig({{"engine", {{"commit_poll", value}}}});
    ASSERT_OK(c.status());
    EXPECT_EQ(c->commit_poll, want) << value;
  }
  for (const json& bad : {json("sometimes"), json(1), json(nullptr)}) {
    EXPECT_EQ(ParseError({{"engine", {{"commit_poll", bad}}}}),
              "invalid configuration: engine.commit_poll: must be one of off, "
              "adaptive, always")
        << bad;
  }
  // From the environment, a mode is a word and the switch JSON.
  Result<Config> word = LoadConfig("", {{"CDE_ENGINE_COMMIT_POLL", "off"}});
  ASSERT_OK(word.status());
  EXPECT_EQ(word->commit_poll, CommitPolling::kOff);
  Result<Config> old = LoadConfig("", {{"CDE_ENGINE_COMMIT_POLL", "true"}});
  ASSERT_OK(old.status());
  EXPECT_EQ(old->commit_poll, CommitPolling::kAlways);
  EXPECT_EQ(ErrorOf(LoadConfig("", {{"CDE_ENGINE_COMMIT_POLL", "often"}})),
            "invalid configuration: CDE_ENGINE_COMMIT_POLL: must be one of "
            "off, adaptive, always");
}

TEST(ConfigTest, UnrelatedCdeVariablesAreIgnored) {
  Result<Config> c = LoadConfig("", {{"CDE_ADMIN_TOKEN", "secret"},
                                     {"CDE_LOG_COLOR", "1"},
                                     {"CDE_", "x"},
                                     {"PATH", "/bin"}});
  ASSERT_OK(c.status());
  EXPECT_EQ(*c, Config());
}

TEST(ConfigTest, ProcessEnvironmentHoldsTheVariablesOfTheProcess) {
  ASSERT_EQ(setenv("CDE_CONFIG_TEST_VAR", "a=b", 1), 0);
  const Env env = ProcessEnvironment();
  unsetenv("CDE_CONFIG_TEST_VAR");
  ASSERT_EQ(env.count("CDE_CONFIG_TEST_VAR"), 1u);
  EXPECT_EQ(env.at("CDE_CONFIG_TEST_VAR"), "a=b");
}

TEST(ConfigTest, MissingFileIsReported) {
  test::TempDir dir;
  const std::string path = dir.Sub("config.json");
  EXPECT_EQ(ErrorOf(LoadConfig(path, {})),
            path + ": cannot read: No such file or directory");
}

TEST(ConfigTest, MalformedJsonReportsThePosition) {
  test::TempDir dir;
  const std::string path =
      WriteFile(dir, "config.json", "{\n  \"sync\": true,\n  \"stdio\": }\n");
  const std::string error = ErrorOf(LoadConfig(path, {}));
  EXPECT_THAT(error, StartsWith(path + ": invalid JSON: "));
  EXPECT_THAT(error, HasSubstr("line 3, column 12"));
}

TEST(ConfigTest, FileNestedTooDeepIsRefused) {
  test::TempDir dir;
  const std::string path = WriteFile(
      dir, "config.json",
      "{\"limits\": " + std::string(600, '[') + std::string(600, ']') + "}");
  EXPECT_EQ(ErrorOf(LoadConfig(path, {})),
            path +
                ": arrays and objects nest 601 levels deep; at most 512 are "
                "accepted");
}

TEST(ConfigTest, ReadTokenFileSkipsCommentsAndBlankLines) {
  test::TempDir dir;
  const std::string path =
      WriteFile(dir, "tokens", "# ops\n\nalpha\r\nbeta  \n#gamma\n");
  Result<std::set<std::string>> tokens = ReadTokenFile(path);
  ASSERT_OK(tokens.status());
  EXPECT_EQ(*tokens, (std::set<std::string>{"alpha", "beta"}));

  EXPECT_THAT(
      ReadTokenFile(WriteFile(dir, "empty", "# none\n")).status().message(),
      HasSubstr("no token in"));
  Status missing = ReadTokenFile(dir.Sub("missing")).status();
  EXPECT_TRUE(missing.IsInvalidArgument());
  EXPECT_THAT(missing.message(), HasSubstr("cannot read"));
}

TEST(ConfigTest, KeysNeedingRestartListsOnlyWhatAReloadCannotApply) {
  const Config running;
  Config reloaded = running;
  reloaded.log.level = LogLevel::kDebug;
  reloaded.workflows_dir = "/new";
  reloaded.shutdown_timeout_ms = 1;
  reloaded.limits.inbound.rate_per_sec = 3;
  reloaded.breaker_default.cool_down_ms = 1;
  reloaded.breakers["k"] = {};
  reloaded.alerts.workflow_failures_threshold = 1;
  EXPECT_THAT(KeysNeedingRestart(running, reloaded), IsEmpty());

  reloaded.data_dir = "/elsewhere";
  reloaded.sync = false;
  reloaded.stdio = true;
  reloaded.http.port = 1;
  reloaded.http.allowed_origins = {"*"};
  reloaded.http.auth_tokens_file = "t";
  reloaded.http.max_message_bytes = 2048;
  reloaded.log.format = "text";
  reloaded.log.file = "f";
  reloaded.log.async = false;
  reloaded.timer_window_ms = 1000;
  reloaded.wal_spare_mb = 0;
  reloaded.commit_pipeline = true;
  reloaded.commit_poll = CommitPolling::kOff;
  reloaded.actions.exec.clients = true;
  reloaded.actions.exec.allow = {"/bin/true"};
  reloaded.actions.exec.env_allow = {};
  reloaded.actions.exec.params_env_allow = {"X"};
  reloaded.actions.exec.cwd = "/tmp";
  reloaded.actions.exec.user = "daemon";
  reloaded.actions.exec.limits.processes = 1;
  reloaded.secrets.file = "s";
  reloaded.actions.http.allow = {"10.0.0.1"};
  reloaded.actions.http.deny = {"10.0.0.2"};
  EXPECT_THAT(
      KeysNeedingRestart(running, reloaded),
      ElementsAre(
          "data_dir", "sync", "stdio", "http.listen", "http.allowed_origins",
          "http.auth_tokens_file", "http.max_message_bytes", "log.format",
          "log.file", "log.async", "engine.timer_window_ms",
          "engine.wal_spare_mb", "engine.commit_pipeline", "engine.commit_poll",
          "actions.exec.clients", "actions.exec.allow",
          "actions.exec.env_allow", "actions.exec.params_env_allow",
          "actions.exec.cwd", "actions.exec.user", "actions.exec.limits",
          "actions.http.allow", "actions.http.deny", "secrets.file"));
}

// `cde-orchestrator serve` with `args`, stderr captured.
test::ChildRun Serve(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      "/bin/sh", "-c", "exec \"$@\" 2>&3", "sh", CDE_ORCHESTRATOR_PATH,
      "serve"};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::RunChild(argv, {}, 60000);
}

TEST(ConfigBinaryTest, BadConfigFileExitsWithTwoNamingTheKey) {
  test::TempDir dir;
  const std::string bad =
      WriteFile(dir, "bad.json", R"({"shutdown": {"timeout_ms": "soon"}})");
  test::ChildRun run = Serve({"--config", bad, "--data-dir", dir.Sub("data")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported, HasSubstr("cde-orchestrator: "));
  EXPECT_THAT(run.reported,
              HasSubstr("shutdown.timeout_ms: must be an integer"));

  const std::string unknown =
      WriteFile(dir, "unknown.json", R"({"http": {"lsten": "none"}})");
  run = Serve({"--config", unknown, "--data-dir", dir.Sub("data")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported, HasSubstr("http.lsten: unknown key"));
}

TEST(ConfigBinaryTest, BadFlagValuesExitWithTwo) {
  test::TempDir dir;
  test::ChildRun run = Serve({"--log-level", "loud"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported, HasSubstr("--log-level: must be one of"));
  run = Serve({"--http", "nonsense"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported,
              HasSubstr("--http: 'nonsense' is not HOST:PORT or none"));
  run = Serve({"--http", "none", "--data-dir", dir.Sub("data")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported,
              HasSubstr("--http none without --stdio leaves nothing to serve"));
  run = Serve({"--auth-tokens", dir.Sub("missing")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported, HasSubstr("--auth-tokens: cannot read"));
}

// Without tokens, only loopback: anyone who reaches another address could
// run workflows. The refusal names the setting and both ways out.
TEST(ConfigBinaryTest, ANonLoopbackAddressWithoutTokensIsRefusedAtStart) {
  test::TempDir dir;
  for (const char* listen : {"0.0.0.0:0", "[::]:0"}) {
    test::ChildRun run =
        Serve({"--http", listen, "--data-dir", dir.Sub("data")});
    EXPECT_EQ(run.exit_code, 2) << listen;
    EXPECT_THAT(run.reported,
                HasSubstr("is not a loopback address, and no bearer tokens "
                          "are configured"));
    EXPECT_THAT(run.reported, HasSubstr("--http: "));
    EXPECT_THAT(run.reported, HasSubstr("Set auth.tokens (or "
                                        "--auth-tokens), or listen on "
                                        "127.0.0.1"));
  }
  const std::string file =
      WriteFile(dir, "open.json", R"({"http": {"listen": "0.0.0.0:0"}})");
  test::ChildRun run = Serve({"--config", file, "--data-dir", dir.Sub("data")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.reported,
              HasSubstr("http.listen: 0.0.0.0 is not a loopback"));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("data")));  // nothing opened
}

TEST(ConfigTest, LoopbackHostsAreThe127NetworkAndColonColonOne) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host :
       {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::ffff:127.0.0.1", ""}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

}  // namespace
}  // namespace cde
