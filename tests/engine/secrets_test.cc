// Secrets: ${secret.NAME} reaches the attempt and nothing else. The value is
// sent (a header, a child's environment) while the saga's snapshot, log and
// errors, and every file of the store, keep only "[secret]" or the
// reference.
#include "engine/secrets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "engine/templating.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using ::testing::HasSubstr;

constexpr char kVar[] = "CDE_TEST_API_TOKEN";
constexpr char kValue[] = "tok-5ecret-9f8e7d";

class SecretsTest : public ::testing::Test {
 protected:
  SecretsTest() { setenv(kVar, kValue, 1); }
  ~SecretsTest() override { unsetenv(kVar); }

  std::string WriteFile(const std::string& text) {
    const std::string path = dir_.Sub("secrets.json");
    std::ofstream(path) << text;
    return path;
  }

  test::TempDir dir_;
};

TEST_F(SecretsTest, LoadsVariablesAndAFile) {
  auto s = Secrets::Load(
      {.env = {kVar}, .file = WriteFile(R"({"DB_PASSWORD": "hunter22"})")});
  ASSERT_OK(s.status());
  EXPECT_EQ(s->values(), (std::map<std::string, std::string>{
                             {kVar, kValue}, {"DB_PASSWORD", "hunter22"}}));
}

TEST_F(SecretsTest, MistakesAreRefusedNamingTheSetting) {
  auto error = [](const SecretsOptions& o) {
    auto s = Secrets::Load(o);
    EXPECT_TRUE(s.status().IsInvalidArgument());
    return s.status().message();
  };
  EXPECT_EQ(error({.env = {"CDE_TEST_NOT_SET"}}),
            "secrets.env: the environment variable CDE_TEST_NOT_SET is not "
            "set");
  const std::string file = WriteFile(R"(["a"])");
  EXPECT_EQ(error({.file = file}),
            "secrets.file " + file +
                ": must be a JSON object of secret values by name");
  WriteFile(R"({"A": 1})");
  EXPECT_EQ(error({.file = file}),
            "secrets.file " + file + ": A must be a string");
  WriteFile(R"({"a-b": "long enough"})");
  EXPECT_THAT(error({.file = file}), HasSubstr("'a-b' is not a secret name"));
  WriteFile(R"({"PIN": "123"})");
  EXPECT_THAT(error({.file = file}), HasSubstr("PIN is shorter than 4"));
  WriteFile(std::string(R"({")") + kVar + R"(": "another one"})");
  EXPECT_THAT(error({.env = {kVar}, .file = file}),
              HasSubstr(std::string(kVar) + " is defined twice"));
  EXPECT_THAT(error({.file = dir_.Sub("missing.json")}),
              HasSubstr("cannot be read: No such file or directory"));
}

TEST(SecretTemplateTest, RendersOnlyWhereSecretsAreGiven) {
  const std::map<std::string, std::string> values = {{"K", "value-1"}};
  TemplateContext tc;
  tc.secrets = &values;
  auto r =
      RenderTemplates({{"h", "Bearer ${secret.K}"}, {"v", "${secret.K}"}}, tc);
  ASSERT_OK(r.status());
  EXPECT_EQ(*r, json({{"h", "Bearer value-1"}, {"v", "value-1"}}));
  EXPECT_EQ(RenderTemplates({{"v", "${secret.NOPE}"}}, tc).status().message(),
            "params.v: ${secret.NOPE}: no secret NOPE is configured");
  EXPECT_EQ(RenderTemplates({{"v", "${secret.K}"}}, TemplateContext{})
                .status()
                .message(),
            "params.v: ${secret.K}: secrets can be named in action params "
            "only");
}

TEST(RedactSecretsTest, ReplacesEveryOccurrenceInOutputsAndErrors) {
  ActionResult ok = ActionResult::Success(
      {{"a", "x value-1 y value-1"}, {"value-1", {1, "value-1"}}});
  RedactSecrets({"value-1"}, &ok);
  EXPECT_EQ(ok.output, json({{"a", "x [secret] y [secret]"},
                             {"[secret]", {1, "[secret]"}}}));
  ActionResult failed = ActionResult::Failure("kind value-1", "bad value-1");
  RedactSecrets({"value-1"}, &failed);
  EXPECT_EQ(failed.error.kind, "kind [secret]");
  EXPECT_EQ(failed.error.message, "bad [secret]");
  // A numeric secret printed as JSON is a number; and the longer of two
  // overlapping values goes whole when values come longest first.
  ActionResult pin = ActionResult::Success({{"pin", 482913}, {"n", 4829}});
  RedactSecrets({"482913"}, &pin);
  EXPECT_EQ(pin.output, json({{"pin", "[secret]"}, {"n", 4829}}));
  ActionResult both = ActionResult::Success("abcd-efgh");
  RedactSecrets({"abcd-efgh", "abcd"}, &both);
  EXPECT_EQ(both.output, "[secret]");
}

// Every file below `dir` that holds `needle`.
std::vector<std::string> FilesHolding(const std::string& dir,
                                      const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (bytes.find(needle) != std::string::npos) out.push_back(e.path());
  }
  return out;
}

TEST_F(SecretsTest, ASecretReachesTheCallButNotTheLogTheSnapshotOrTheStore) {
  TestHttpServer server;
  server.Start();
  // A careless service that echoes what it got, in success and in error.
  server.Respond("/echo", 200,
                 json({{"seen", std::string("Bearer ") + kValue}}).dump());
  server.Respond("/deny", 401, std::string("bad token ") + kValue);
  const json auth = {{"Authorization", "Bearer ${secret.CDE_TEST_API_TOKEN}"}};
  const json workflow = {
      {"name", "calls"},
      {"version", 1},
      {"steps",
       {{{"name", "get"},
         {"action", "http"},
         {"params", {{"url", server.url("/echo")}, {"headers", auth}}}},
        {{"name", "run"},
         {"action", "exec"},
         {"params",
          {{"argv", {"/bin/sh", "-c", R"(printf '{"token": "%s"}' "$TOKEN")"}},
           {"env", {{"TOKEN", "${secret.CDE_TEST_API_TOKEN}"}}}}}},
        {{"name", "denied"},
         {"action", "http"},
         {"retry", {{"max_attempts", 1}}},
         {"params", {{"url", server.url("/deny")}, {"headers", auth}}}}}}};
  const std::string data = dir_.Sub("data");
  {
    EngineHarness h;
    EngineOptions options;
    options.data_dir = data;
    options.action_policy.http.allow = {"127.0.0.1"};
    options.secrets.env = {kVar};
    ASSERT_OK(h.Open(std::move(options)));
    ASSERT_OK(h.Register(workflow).status());
    auto started = h.Start({.workflow = "calls"});
    ASSERT_OK(started.status());
    auto rec = h.AwaitInactive(started->saga_id);
    ASSERT_OK(rec.status());
    EXPECT_EQ(rec->state, SagaState::kCompensated) << rec->body.dump();
    const json& steps = rec->body["steps"];
    EXPECT_EQ(steps[0]["output"], json({{"seen", "Bearer [secret]"}}));
    EXPECT_EQ(steps[1]["output"], json({{"token", "[secret]"}}));
    EXPECT_EQ(steps[2]["error"]["message"], "HTTP 401: bad token [secret]");
    // The value did reach the service, twice.
    for (const auto& req : server.requests()) {
      EXPECT_EQ(req.header("authorization"), std::string("Bearer ") + kValue);
    }
    EXPECT_EQ(server.request_count(), 2u);
    auto log = h.engine().store().ReadLog(started->saga_id, 1, 1000);
    ASSERT_OK(log.status());
    for (const LogRecord& r : *log) {
      EXPECT_EQ(r.data.dump().find(kValue), std::string::npos) << r.type;
    }
    ASSERT_OK(h.Close());
  }
  // No file of the store holds the value (the WAL, the SSTs, the MANIFEST,
  // the options; SST blocks may be compressed, so the rows are read too).
  EXPECT_THAT(FilesHolding(data, kValue), ::testing::IsEmpty());
  auto store = OpenRocksStore({.path = data, .mode = OpenMode::kReadOnly});
  ASSERT_OK(store.status());
  size_t rows[kCfCount] = {}, references = 0;
  for (size_t cf = 0; cf < kCfCount; ++cf) {
    ASSERT_OK((*store)->ScanRows(
        static_cast<Cf>(cf), [&](std::string_view key, std::string_view value) {
          ++rows[cf];
          EXPECT_EQ(key.find(kValue), std::string_view::npos);
          EXPECT_EQ(value.find(kValue), std::string_view::npos)
              << CfName(static_cast<Cf>(cf));
          if (value.find("${secret.CDE_TEST_API_TOKEN}") !=
              std::string_view::npos) {
            ++references;
          }
          return true;
        }));
  }
  // The scan saw the saga's snapshot and log and the definition.
  EXPECT_GT(rows[static_cast<size_t>(Cf::kSagas)], 0u);
  EXPECT_GT(rows[static_cast<size_t>(Cf::kLog)], 1u);
  EXPECT_GT(rows[static_cast<size_t>(Cf::kDefinitions)], 0u);
  EXPECT_GT(references, 0u) << "the definition keeps the reference";
}

// A step that names no secret still has its output redacted: an
// operator's child inherits the environment secrets.env reads.
TEST_F(SecretsTest, AnOperatorsChildPrintingItsEnvironmentIsRedacted) {
  EngineHarness h;
  EngineOptions options;
  options.data_dir = "";
  options.secrets.env = {kVar};
  ASSERT_OK(h.Open(std::move(options)));
  ASSERT_OK(h.Register({{"name", "env"},
                        {"version", 1},
                        {"steps",
                         {{{"name", "env"},
                           {"action", "exec"},
                           {"params", {{"argv", {"/usr/bin/env"}}}}}}}})
                .status());
  auto started = h.Start({.workflow = "env"});
  ASSERT_OK(started.status());
  auto rec = h.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  const std::string out = rec->body["steps"][0]["output"].value("stdout", "");
  EXPECT_NE(out.find(std::string(kVar) + "=[secret]"), std::string::npos)
      << out;
  EXPECT_EQ(out.find(kValue), std::string::npos);
}

// secrets.clients is checked again at each attempt: turned off, a client's
// definition registered while it was on gets no secret.
TEST_F(SecretsTest, AClientsDefinitionLosesSecretsWhenClientsAreTurnedOff) {
  const json def = {{"name", "say"},
                    {"version", 1},
                    {"steps",
                     {{{"name", "say"},
                       {"action", "echo"},
                       {"retry", {{"max_attempts", 3}}},
                       {"params", {{"x", "${secret.CDE_TEST_API_TOKEN}"}}}}}}};
  const std::string data = dir_.Sub("data");
  auto open = [&](EngineHarness& h, bool clients) {
    EngineOptions options;
    options.data_dir = data;
    options.secrets = {.env = {kVar}, .clients = clients};
    return h.Open(std::move(options));
  };
  {
    EngineHarness h;
    ASSERT_OK(open(h, true));
    ASSERT_OK(h.Register(def, DefinitionOrigin::kClient).status());
    ASSERT_OK(h.Close());
  }
  EngineHarness h;
  ASSERT_OK(open(h, false));
  auto started = h.Start({.workflow = "say"});
  ASSERT_OK(started.status());
  auto rec = h.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  const json& step = rec->body["steps"][0];
  EXPECT_EQ(step["error"]["kind"], "policy") << step.dump();
  EXPECT_EQ(step["error"]["message"],
            "secrets are not available to definitions registered by clients "
            "(secrets.clients is off)");
  EXPECT_EQ(step["attempts"], 1);
  ASSERT_OK(h.Close());
}

// An action that returns part of a text (an error body's head, stderr's
// tail) redacts before it cuts: the engine would not recognise half a value.
TEST_F(SecretsTest, AValueAtTheCutOfAnErrorIsRedactedWhole) {
  TestHttpServer server;
  server.Start();
  // The value straddles the 2,048th byte, where the message is cut.
  server.Respond("/deny", 500, std::string(2040, 'x') + kValue + "tail");
  EngineHarness h;
  EngineOptions options;
  options.data_dir = "";
  options.action_policy.http.allow = {"127.0.0.1"};
  options.secrets.env = {kVar};
  ASSERT_OK(h.Open(std::move(options)));
  const json once = {{"max_attempts", 1}};
  // The exec step's stderr: the value, then 2,040 bytes, so that the last
  // 2,048 bytes begin inside it.
  const std::string script =
      "printf '%s' \"$T\" >&2; head -c 2040 /dev/zero | tr '\\0' y >&2; "
      "exit 3";
  const json def = {{"name", "cut"},
                    {"version", 1},
                    {"steps",
                     {{{"name", "http"},
                       {"action", "http"},
                       {"retry", once},
                       {"params", {{"url", server.url("/deny")}}}},
                      {{"name", "exec"},
                       {"action", "exec"},
                       {"retry", once},
                       {"params",
                        {{"argv", {"/bin/sh", "-c", script}},
                         {"env", {{"T", "${secret.CDE_TEST_API_TOKEN}"}}}}}}}}};
  ASSERT_OK(h.Register(def).status());
  // The first run fails at the http step; the second, with the service
  // answering, at the exec step.
  auto error_of = [&](size_t step) {
    auto started = h.Start({.workflow = "cut"});
    EXPECT_OK(started.status());
    auto rec = h.AwaitInactive(started->saga_id);
    EXPECT_OK(rec.status());
    return rec->body["steps"][step]["error"].value("message", "");
  };
  const std::string http_error = error_of(0);
  EXPECT_THAT(http_error, HasSubstr("xxx[secret]"));
  EXPECT_EQ(http_error.find("tok-"), std::string::npos) << http_error;
  server.Respond("/deny", 200, "{}");
  const std::string exec_error = error_of(1);
  EXPECT_THAT(exec_error, HasSubstr("exit code 3: "));
  EXPECT_EQ(exec_error.find("9f8e7d"), std::string::npos) << exec_error;
}

// curl cuts its error text at 255 bytes, before anyone can redact it: a
// value cut in two at the end goes too; whole values anywhere as always.
TEST(RedactCutTextTest, AValueCutInTwoAtTheEndIsRedacted) {
  const std::vector<std::string> values = {"db-9f8e7d.internal", "tok-123"};
  std::string text = "Could not resolve host: db-9f8e";
  RedactCutText(values, &text);
  EXPECT_EQ(text, "Could not resolve host: [secret]");
  text = "tok-123 and then db-9f8e7d.internal, cut at tok-1";
  RedactCutText(values, &text);
  EXPECT_EQ(text, "[secret] and then [secret], cut at [secret]");
  text = "nothing of either here";
  RedactCutText(values, &text);
  EXPECT_EQ(text, "nothing of either here");
}

// A breaker is named by the host it guards, in metrics and logs: a host a
// secret renders is named "[secret]".
TEST_F(SecretsTest, ABreakerOnASecretHostIsNotNamedByIt) {
  TestHttpServer server;
  server.Start();
  server.Respond("/down", 503, "down");
  EngineHarness h;
  EngineOptions options;
  options.data_dir = "";
  options.action_policy.http.allow = {"127.0.0.1"};
  // Host names are case-insensitive: the key is redacted as rendered.
  options.secrets.file = WriteFile(R"({"HOST": "LocalHost"})");
  options.limits.breaker_default = {.failure_threshold = 1};
  ASSERT_OK(h.Open(std::move(options)));
  const std::string url = server.url("/down");
  const std::string templated =
      "http://${secret.HOST}" + url.substr(url.rfind(':'));
  ASSERT_OK(h.Register({{"name", "down"},
                        {"version", 1},
                        {"steps",
                         {{{"name", "call"},
                           {"action", "http"},
                           {"retry", {{"max_attempts", 1}}},
                           {"params", {{"url", templated}}}}}}})
                .status());
  auto started = h.Start({.workflow = "down"});
  ASSERT_OK(started.status());
  ASSERT_OK(h.AwaitInactive(started->saga_id).status());
  EXPECT_EQ(server.request_count(), 1u);
  const std::string metrics = h.engine().metrics().Render();
  EXPECT_THAT(metrics, HasSubstr("cde_circuit_breaker_state{key=\"[secret]:"));
  EXPECT_EQ(metrics.find("ocalhost"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("ocalHost"), std::string::npos) << metrics;
}

TEST_F(SecretsTest, ASleepCannotNameASecret) {
  EngineHarness h;
  EngineOptions options;
  options.data_dir = "";
  options.secrets.env = {kVar};
  ASSERT_OK(h.Open(std::move(options)));
  auto r = h.Register(
      {{"name", "nap"},
       {"version", 1},
       {"steps",
        {{{"name", "nap"},
          {"action", "sleep"},
          {"params", {{"duration_ms", "${secret.CDE_TEST_API_TOKEN}"}}}}}}});
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(),
            "invalid workflow definition: steps[0].params: "
            "${secret.CDE_TEST_API_TOKEN}: a sleep's duration cannot use a "
            "secret");
}

TEST_F(SecretsTest, ADefinitionMayNameOnlyConfiguredSecretsAndClientsNone) {
  EngineHarness h;
  EngineOptions options;
  options.data_dir = "";  // in memory
  options.secrets.env = {kVar};
  ASSERT_OK(h.Open(std::move(options)));
  auto def = [](const std::string& name, const std::string& secret) {
    return json{{"name", name},
                {"version", 1},
                {"steps",
                 {{{"name", "say"},
                   {"action", "echo"},
                   {"params", {{"x", "${secret." + secret + "}"}}}}}}};
  };
  auto unknown = h.Register(def("a", "NOPE"));
  ASSERT_TRUE(unknown.status().IsInvalidArgument());
  EXPECT_EQ(unknown.status().message(),
            "invalid workflow definition: steps[0].params: ${secret.NOPE}: no "
            "secret NOPE is configured (secrets.env, secrets.file)");
  auto client = h.Register(def("b", kVar), DefinitionOrigin::kClient);
  ASSERT_TRUE(client.status().IsInvalidArgument());
  EXPECT_EQ(client.status().message(),
            "invalid workflow definition: steps[0].params: "
            "${secret.CDE_TEST_API_TOKEN}: secrets are not available to "
            "definitions registered by clients (secrets.clients is off)");
  EXPECT_TRUE(h.engine().ListWorkflows().empty());
  ASSERT_OK(h.Register(def("c", kVar)).status());  // the operator's
}

}  // namespace
}  // namespace cde

namespace cde {
namespace {

TEST(DefinitionForDisplayTest, CredentialHeadersAreRedactedUnlessReferences) {
  const nlohmann::json def = {
      {"name", "d"},
      {"steps",
       {{{"name", "a"},
         {"action", "http"},
         {"params",
          {{"url", "https://x.example"},
           {"headers",
            {{"Authorization", "Bearer abc123"},
             {"X-Api-Key", "k-42"},
             {"Cookie", "session=1"},
             {"Accept", "application/json"}}}}},
         {"compensate",
          {{"action", "http"},
           {"params",
            {{"url", "https://x.example"},
             {"headers",
              {{"authorization", "Bearer ${secret.API_TOKEN}"},
               {"X-Auth-Token", "${input.token}"}}}}}}}}}}};
  const nlohmann::json shown = DefinitionForDisplay(def);
  const auto& h = shown["steps"][0]["params"]["headers"];
  EXPECT_EQ(h["Authorization"], "[redacted]");
  EXPECT_EQ(h["X-Api-Key"], "[redacted]");
  EXPECT_EQ(h["Cookie"], "[redacted]");
  EXPECT_EQ(h["Accept"], "application/json");
  const auto& c = shown["steps"][0]["compensate"]["params"]["headers"];
  EXPECT_EQ(c["authorization"], "Bearer ${secret.API_TOKEN}");
  EXPECT_EQ(c["X-Auth-Token"], "${input.token}");
  EXPECT_EQ(shown["steps"][0]["params"]["url"], "https://x.example");
}

}  // namespace
}  // namespace cde
