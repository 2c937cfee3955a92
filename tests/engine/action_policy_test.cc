// The action policy for definitions registered by clients: what is refused
// at registration, and what is left to (and refused at) run time.
#include "engine/action_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/store.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;

WorkflowDefinition Parse(const json& steps) {
  auto def = ParseDefinition({{"name", "p"}, {"version", 1}, {"steps", steps}},
                             ActionNames{});
  EXPECT_TRUE(def.ok()) << def.status().ToString();
  return def.ok() ? *def : WorkflowDefinition{};
}

std::vector<std::string> Refusals(const json& steps,
                                  const ActionPolicy& policy) {
  auto destinations = DestinationPolicy::Compile(policy.http);
  EXPECT_TRUE(destinations.ok()) << destinations.status().ToString();
  std::vector<std::string> out;
  for (const DefinitionError& e :
       CheckClientDefinition(Parse(steps), policy, *destinations)) {
    out.push_back(e.ToString());
  }
  return out;
}

json Exec(const json& argv) {
  return {{"action", "exec"}, {"params", {{"argv", argv}}}};
}

TEST(ActionPolicyTest, ExecIsRefusedToClientsByDefaultWhereverItIs) {
  json step = Exec({"/bin/sh", "-c", "id"});
  step["name"] = "shell";
  json undo = {{"name", "book"},
               {"action", "noop"},
               {"compensate", Exec({"/usr/bin/curl", "x"})}};
  EXPECT_THAT(
      Refusals({{{"name", "a"}, {"action", "noop"}}, step, undo}, {}),
      ::testing::ElementsAre(
          "steps[1].action: exec is not allowed in definitions registered "
          "by clients (actions.exec.clients is off); an operator can "
          "register it from the workflows directory",
          "steps[2].compensate.action: exec is not allowed in definitions "
          "registered by clients (actions.exec.clients is off); an operator "
          "can register it from the workflows directory"));
  EXPECT_TRUE(Refusals({{{"name", "a"}, {"action", "echo"}},
                        {{"name", "b"},
                         {"action", "http"},
                         {"params", {{"url", "https://api.example.com/"}}}}},
                       {})
                  .empty());
}

json Http(const std::string& name, const std::string& url) {
  return {{"name", name}, {"action", "http"}, {"params", {{"url", url}}}};
}

TEST(ActionPolicyTest, AClientsLiteralUrlToAnInsideAddressIsRefused) {
  json undo = Http("book", "https://api.example.com/book");
  undo["compensate"] = {{"action", "http"},
                        {"params", {{"url", "http://127.0.0.1:9000/undo"}}}};
  EXPECT_THAT(
      Refusals({Http("meta", "http://169.254.169.254/latest/meta-data/"), undo,
                Http("db", "http://db.corp.test:5432/"),
                Http("later", "http://${input.host}/")},
               {.http = {.deny = {"*.corp.test"}}}),
      ::testing::ElementsAre(
          "steps[0].params.url: address 169.254.169.254 is link-local (cloud "
          "metadata services live there); list it in actions.http.allow to "
          "allow it",
          "steps[1].compensate.params.url: address 127.0.0.1 is loopback, "
          "which definitions registered by clients may not reach; list it in "
          "actions.http.allow to allow it",
          "steps[2].params.url: host db.corp.test matches '*.corp.test' in "
          "actions.http.deny"));
  EXPECT_TRUE(Refusals(json::array({Http("mine", "http://127.0.0.1:9000/")}),
                       {.http = {.allow = {"127.0.0.1"}}})
                  .empty());
}

TEST(ActionPolicyTest, ClientsMayRunOnlyTheExecutablesAllowed) {
  ActionPolicy policy;
  policy.exec.clients = true;
  policy.exec.allow = {"/usr/bin/convert"};
  json ok = Exec({"/usr/bin/convert", "in.png", "out.jpg"});
  ok["name"] = "ok";
  json shell = Exec({"/bin/sh", "-c", "id"});
  shell["name"] = "shell";
  json relative = Exec({"convert"});
  relative["name"] = "relative";
  json templated = Exec({"${input.program}"});
  templated["name"] = "templated";
  EXPECT_THAT(Refusals({ok, shell, relative, templated}, policy),
              ::testing::ElementsAre(
                  "steps[1].params.argv[0]: '/bin/sh' is not in "
                  "actions.exec.allow, the executables client definitions "
                  "may run",
                  "steps[2].params.argv[0]: 'convert' is not in "
                  "actions.exec.allow, the executables client definitions "
                  "may run"));
  // Turned on with nothing allowed: nothing runs.
  policy.exec.allow.clear();
  EXPECT_EQ(Refusals(json::array({ok}), policy).size(), 1u);
}

TEST(ActionPolicyTest, RenderedArgvIsCheckedWhenTheAttemptRuns) {
  ActionPolicy policy;
  policy.exec.clients = true;
  policy.exec.allow = {"/bin/echo"};
  const ActionSpec spec{.action = "exec",
                        .params = {{"argv", {"${input.program}", "hi"}}}};
  EXPECT_TRUE(
      CheckClientAttempt(spec, {{"argv", {"/bin/echo", "hi"}}}, policy).ok());
  const Status s =
      CheckClientAttempt(spec, {{"argv", {"/bin/sh", "hi"}}}, policy);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(),
            "params.argv[0]: '/bin/sh' is not in actions.exec.allow, the "
            "executables client definitions may run");
  EXPECT_EQ(CheckClientAttempt(spec, {{"argv", {"/bin/echo"}}}, {}).message(),
            "exec is not allowed in definitions registered by clients "
            "(actions.exec.clients is off)");
  // Variables are allowed by name: BASH_ENV, PERL5OPT, NODE_OPTIONS and
  // the loader's would let an allowed program run any code. Refused,
  // literal or rendered, unless listed.
  const ActionSpec preload{.action = "exec",
                           .params = {{"argv", {"/bin/echo"}},
                                      {"env", {{"LD_PRELOAD", "/tmp/x.so"}}}}};
  EXPECT_EQ(CheckClientAttempt(preload, preload.params, policy).message(),
            "params.env.LD_PRELOAD: 'LD_PRELOAD' is not in "
            "actions.exec.params_env_allow, the variables client definitions "
            "may set");
  json step = Exec({"/bin/echo"});
  step["name"] = "s";
  step["params"]["env"] = {{"GREETING", "hi"}, {"BASH_ENV", "/tmp/x"}};
  policy.exec.params_env_allow = {"GREETING"};
  EXPECT_THAT(Refusals(json::array({step}), policy),
              ::testing::ElementsAre(
                  "steps[0].params.env.BASH_ENV: 'BASH_ENV' is not in "
                  "actions.exec.params_env_allow, the variables client "
                  "definitions may set"));
  step["params"]["env"].erase("BASH_ENV");
  EXPECT_THAT(Refusals(json::array({step}), policy), ::testing::IsEmpty());
  EXPECT_TRUE(CheckClientAttempt(
                  preload,
                  {{"argv", {"/bin/echo"}}, {"env", {{"GREETING", "hi"}}}},
                  policy)
                  .ok());
  // Other actions are not the exec policy's business.
  EXPECT_TRUE(CheckClientAttempt({.action = "echo"}, json::object(), {}).ok());
}

TEST(ActionPolicyTest, AClientsExecRunsInTheConfiguredDirectoryOnly) {
  ActionPolicy policy;
  policy.exec.clients = true;
  policy.exec.allow = {"/bin/pwd"};
  json step = Exec({"/bin/pwd"});
  step["name"] = "s";
  step["params"]["cwd"] = "/root";
  EXPECT_THAT(Refusals(json::array({step}), policy),
              ::testing::ElementsAre(
                  "steps[0].params.cwd: the working directory of a client "
                  "definition's exec is actions.exec.cwd; cwd is not "
                  "allowed"));
  const ActionSpec spec{.action = "exec", .params = step["params"]};
  EXPECT_TRUE(
      CheckClientAttempt(spec, spec.params, policy).IsInvalidArgument());
}

}  // namespace
}  // namespace cde

// ---- The policy in the engine ----------------------------------------------

namespace cde {
namespace {

using test::EngineHarness;

json Definition(const std::string& name, const json& steps) {
  return {{"name", name}, {"version", 1}, {"steps", steps}};
}

ActionPolicy EchoOnly() {
  ActionPolicy policy;
  policy.exec.clients = true;
  policy.exec.allow = {"/bin/echo"};
  return policy;
}

// `${input.program}` as argv[0], retried up to 3 times if it fails.
json TemplatedExec() {
  return Definition(
      "run", {{{"name", "run"},
               {"action", "exec"},
               {"params", {{"argv", {"${input.program}", "{}"}}}},
               {"retry", {{"max_attempts", 3}, {"initial_backoff_ms", 1}}}}});
}

TEST(EnginePolicyTest, AClientsExecIsRefusedAndAnOperatorsIsNot) {
  EngineHarness h;
  ASSERT_OK(h.Open(""));
  const json shell =
      Definition("shell", {{{"name", "id"},
                            {"action", "exec"},
                            {"params", {{"argv", {"/bin/sh", "-c", "id"}}}}}});
  const auto refused = h.Register(shell, DefinitionOrigin::kClient);
  ASSERT_TRUE(refused.status().IsInvalidArgument());
  EXPECT_EQ(refused.status().message(),
            "workflow definition refused by the action policy: "
            "steps[0].action: exec is not allowed in definitions registered "
            "by clients (actions.exec.clients is off); an operator can "
            "register it from the workflows directory");
  EXPECT_TRUE(h.engine().ListWorkflows().empty());  // nothing stored
  auto mine = h.Register(shell);                    // the operator's
  ASSERT_OK(mine.status());
  EXPECT_EQ(mine->origin, DefinitionOrigin::kOperator);
}

TEST(EnginePolicyTest, ARenderedArgvOutsideTheAllowListFailsWithoutRetries) {
  EngineHarness h;
  ASSERT_OK(h.Open("", {}, 60000, true, EchoOnly()));
  ASSERT_OK(h.Register(TemplatedExec(), DefinitionOrigin::kClient).status());
  auto bad = h.Start({.workflow = "run", .input = {{"program", "/bin/sh"}}});
  ASSERT_OK(bad.status());
  auto rec = h.AwaitInactive(bad->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  const json& step = rec->body["steps"][0];
  EXPECT_EQ(step["attempts"], 1) << step.dump();  // the same argv again: no
  EXPECT_EQ(step["error"]["kind"], "policy");
  EXPECT_EQ(step["error"]["message"],
            "params.argv[0]: '/bin/sh' is not in actions.exec.allow, the "
            "executables client definitions may run");
  auto good = h.Start({.workflow = "run", .input = {{"program", "/bin/echo"}}});
  ASSERT_OK(good.status());
  auto done = h.AwaitInactive(good->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted) << done->body.dump();
}

// A URL the input builds, to a server on loopback: an operator's definition
// reaches it, a client's is refused when the attempt connects, once (the
// same URL would be refused again), and the server sees nothing.
TEST(EnginePolicyTest, AClientsUrlBuiltFromTheInputIsCheckedWhenItConnects) {
  TestHttpServer server;
  server.Start();
  server.Respond("/ok", 200, R"({"ok": true})");
  EngineHarness h;
  ASSERT_OK(h.Open(""));
  json fetch = Definition(
      "fetch", {{{"name", "get"},
                 {"action", "http"},
                 {"params", {{"url", "${input.url}"}}},
                 {"retry", {{"max_attempts", 3}, {"initial_backoff_ms", 1}}}}});
  ASSERT_OK(h.Register(fetch, DefinitionOrigin::kClient).status());
  fetch["name"] = "fetch-op";
  ASSERT_OK(h.Register(fetch).status());
  // "localhost": the name passes, its address does not.
  const std::string url =
      "http://localhost:" + std::to_string(server.port()) + "/ok";

  auto client = h.Start({.workflow = "fetch", .input = {{"url", url}}});
  ASSERT_OK(client.status());
  auto refused = h.AwaitInactive(client->saga_id);
  ASSERT_OK(refused.status());
  const json& step = refused->body["steps"][0];
  EXPECT_EQ(step["attempts"], 1) << step.dump();
  EXPECT_EQ(step["error"]["kind"], "policy");
  // 127.0.0.1 or ::1, whichever curl tried last.
  EXPECT_THAT(step["error"]["message"].get<std::string>(),
              ::testing::AllOf(
                  ::testing::StartsWith("http to " + url +
                                        " refused by the action policy: "),
                  ::testing::HasSubstr(" is loopback, which definitions "
                                       "registered by clients may not reach")));
  EXPECT_EQ(server.request_count(), 0u);

  auto op = h.Start({.workflow = "fetch-op", .input = {{"url", url}}});
  ASSERT_OK(op.status());
  auto done = h.AwaitInactive(op->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted) << done->body.dump();
  EXPECT_EQ(server.request_count(), 1u);
}

// The sandbox is for clients' children: an operator's sees the server's
// environment, a client's only what actions.exec.env_allow passes on.
TEST(EnginePolicyTest, OnlyAClientsChildRunsInTheSandbox) {
  ASSERT_EQ(setenv("CDE_TEST_SERVER_SECRET", "s3cret", 1), 0);
  ActionPolicy policy;
  policy.exec.clients = true;
  policy.exec.allow = {"/usr/bin/env"};
  EngineHarness h;
  ASSERT_OK(h.Open("", {}, 60000, true, policy));
  const json env_step = {{"name", "env"},
                         {"action", "exec"},
                         {"params", {{"argv", {"/usr/bin/env"}}}}};
  ASSERT_OK(h.Register(Definition("env-client", json::array({env_step})),
                       DefinitionOrigin::kClient)
                .status());
  ASSERT_OK(h.Register(Definition("env-op", json::array({env_step}))).status());
  auto output_of = [&](const std::string& workflow) -> std::string {
    auto started = h.Start({.workflow = workflow});
    EXPECT_OK(started.status());
    auto rec = h.AwaitInactive(started->saga_id);
    EXPECT_OK(rec.status());
    EXPECT_EQ(rec->state, SagaState::kCompleted) << rec->body.dump();
    return rec->body["steps"][0]["output"].value("stdout", "");
  };
  const std::string op = output_of("env-op");
  const std::string client = output_of("env-client");
  unsetenv("CDE_TEST_SERVER_SECRET");
  EXPECT_NE(op.find("CDE_TEST_SERVER_SECRET=s3cret"), std::string::npos);
  EXPECT_EQ(client.find("CDE_TEST_SERVER_SECRET"), std::string::npos) << client;
  EXPECT_NE(client.find("CDE_STEP=env"), std::string::npos) << client;
}

// The origin is stored: a restart with a stricter policy stops what a
// client registered under a looser one, and an operator's registration of
// the same content makes it theirs.
TEST(EnginePolicyTest, TheOriginSurvivesARestartAndAnOperatorCanAdoptIt) {
  test::TempDir dir;
  const json echo =
      Definition("echo", {{{"name", "say"},
                           {"action", "exec"},
                           {"params", {{"argv", {"/bin/echo", "{}"}}}}}});
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {}, 60000, true, EchoOnly()));
    ASSERT_OK(h.Register(echo, DefinitionOrigin::kClient).status());
    ASSERT_OK(h.Close());
  }
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path()));  // exec off for clients
  ASSERT_EQ(h.engine().ListWorkflows().size(), 1u);
  EXPECT_EQ(h.engine().ListWorkflows()[0]->origin, DefinitionOrigin::kClient);
  auto stopped = h.Start({.workflow = "echo"});
  ASSERT_OK(stopped.status());
  auto rec = h.AwaitInactive(stopped->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->body["steps"][0]["error"]["kind"], "policy");

  auto adopted = h.Register(echo);  // the same content, by the operator
  ASSERT_OK(adopted.status());
  EXPECT_EQ(adopted->origin, DefinitionOrigin::kOperator);
  EXPECT_EQ(h.engine().ListWorkflows()[0]->origin, DefinitionOrigin::kOperator);
  auto runs = h.Start({.workflow = "echo"});
  ASSERT_OK(runs.status());
  auto ran = h.AwaitInactive(runs->saga_id);
  ASSERT_OK(ran.status());
  EXPECT_EQ(ran->state, SagaState::kCompleted) << ran->body.dump();
  // A client registering it again changes nothing.
  auto again = h.Register(echo, DefinitionOrigin::kClient);
  ASSERT_TRUE(again.status().IsInvalidArgument());  // exec is off for them
  EXPECT_EQ(h.engine().ListWorkflows()[0]->origin, DefinitionOrigin::kOperator);
  ASSERT_OK(h.Close());
  auto store =
      OpenRocksStore({.path = dir.path(), .mode = OpenMode::kReadOnly});
  ASSERT_OK(store.status());
  auto defs = (*store)->ListDefinitions();
  ASSERT_OK(defs.status());
  ASSERT_EQ(defs->size(), 1u);
  EXPECT_EQ((*defs)[0].origin, DefinitionOrigin::kOperator);
}

}  // namespace
}  // namespace cde
