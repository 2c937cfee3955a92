// Workflow definitions: the exact error every rule produces (table-driven),
// the typed model a valid document parses into (defaults filled in), the
// matching of non_retryable error kinds, and the shipped examples.
#include "engine/definition.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/engine/definition_test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

// The smallest valid definition; each bad case patches it.
constexpr const char* kBase =
    R"({"name": "wf", "version": 1, "steps": [{"name": "a", "action": "noop"}]})";

const std::string kNameRule = "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}";

using test::Errors;

// kBase with `patch` merged in (RFC 7396: null removes a key, arrays are
// replaced whole).
json Patched(const char* patch) {
  json doc = json::parse(kBase);
  doc.merge_patch(json::parse(patch));
  return doc;
}

struct BadCase {
  const char* patch;
  Strings errors;
};

void ExpectErrors(const std::vector<BadCase>& cases,
                  const ActionNames& native = {}) {
  for (const BadCase& c : cases) {
    EXPECT_EQ(Errors(Patched(c.patch), native), c.errors) << c.patch;
  }
}

TEST(ValidateDefinitionTest, BaseDefinitionIsValid) {
  EXPECT_EQ(Errors(json::parse(kBase)), Strings{});
}

TEST(ValidateDefinitionTest, RootRules) {
  ExpectErrors({
      {R"({"nmae": "x"})", {"unknown key 'nmae'"}},
      {R"({"name": null})", {"name: is required"}},
      {R"({"name": 5})", {"name: must be a string"}},
      {R"({"name": ""})", {"name: " + kNameRule}},
      {R"({"name": "-wf"})", {"name: " + kNameRule}},
      {R"({"name": "trip booking"})", {"name: " + kNameRule}},
      {R"({"name": "trip/booking"})", {"name: " + kNameRule}},
      {R"({"version": null})", {"version: is required"}},
      {R"({"version": 0})", {"version: must be >= 1"}},
      {R"({"version": -1})", {"version: must be >= 1"}},
      {R"({"version": "1"})", {"version: must be an integer"}},
      {R"({"version": 1.5})", {"version: must be an integer"}},
      {R"({"version": 4294967296})", {"version: must be <= 4294967295"}},
      {R"({"description": 5})", {"description: must be a string"}},
      {R"({"input_schema": []})", {"input_schema: must be an object"}},
      {R"({"input_schema": {"requried": ["a"]}})",
       {"input_schema: unknown keyword 'requried'"}},
      {R"({"input_schema": {"properties": {"qty": {"minimum": "1"}}}})",
       {"input_schema.properties.qty.minimum: must be a number"}},
      {R"({"on_failure": "retry"})",
       {R"(on_failure: must be "compensate" or "park")"}},
      {R"({"on_failure": 1})",
       {R"(on_failure: must be "compensate" or "park")"}},
      {R"({"max_concurrency": 0})", {"max_concurrency: must be >= 1"}},
      {R"({"max_concurrency": "10"})", {"max_concurrency: must be an integer"}},
      {R"({"steps": null})", {"steps: is required"}},
      {R"({"steps": {}})", {"steps: must be an array"}},
      {R"({"steps": []})", {"steps: must have at least one step"}},
  });
}

// Examples are shown to agents as inputs to copy: each must be accepted.
TEST(ValidateDefinitionTest, ExamplesMustMatchTheInputSchema) {
  const char* schema = R"("input_schema": {"type": "object",
      "required": ["qty"],
      "properties": {"qty": {"type": "integer", "minimum": 1}}})";
  ExpectErrors({
      {R"({"examples": {}})",
       {"examples: must be a non-empty array of example inputs"}},
      {R"({"examples": []})",
       {"examples: must be a non-empty array of example inputs"}},
      {R"({"examples": [3]})",
       {"examples[0]: must be an object (a saga's input)"}},
      {(std::string("{") + schema +
        R"(, "examples": [{"qty": 2}, {"qty": 0}]})")
           .c_str(),
       {"examples[1]: does not match input_schema: input.qty: must be >= 1"}},
  });
  auto def = ParseDefinition(
      Patched((std::string("{") + schema + R"(, "examples": [{"qty": 2}]})")
                  .c_str()),
      {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->examples, json::array({{{"qty", 2}}}));
}

TEST(ValidateDefinitionTest, DlqAutoReplayRules) {
  ExpectErrors({
      {R"({"dlq": []})", {"dlq: must be an object"}},
      {R"({"dlq": {"auto_replays": {}}})", {"dlq: unknown key 'auto_replays'"}},
      {R"({"dlq": {"auto_replay": 3}})",
       {"dlq.auto_replay: must be an object"}},
      {R"({"dlq": {"auto_replay": {}}})",
       {"dlq.auto_replay.max_replays: is required",
        "dlq.auto_replay.after_ms: is required"}},
      {R"({"dlq": {"auto_replay": {"max_replays": 0, "after_ms": -1}}})",
       {"dlq.auto_replay.max_replays: must be >= 1",
        "dlq.auto_replay.after_ms: must be >= 0"}},
      {R"({"dlq": {"auto_replay": {"max_replays": 2, "after_ms": 10,
                                    "jitter": 1}}})",
       {"dlq.auto_replay: unknown key 'jitter'"}},
  });
  auto def = ParseDefinition(
      Patched(
          R"({"dlq": {"auto_replay": {"max_replays": 2, "after_ms": 50}}})"),
      {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  ASSERT_TRUE(def->auto_replay.has_value());
  EXPECT_EQ(def->auto_replay->max_replays, 2u);
  EXPECT_EQ(def->auto_replay->after_ms, 50);
}

TEST(ValidateDefinitionTest, NonObjectDocumentIsRejected) {
  const Strings expected = {"a workflow definition must be a JSON object"};
  EXPECT_EQ(Errors(json::array()), expected);
  EXPECT_EQ(Errors(json("wf")), expected);
  EXPECT_EQ(Errors(json()), expected);
}

TEST(ValidateDefinitionTest, NamesUpTo128CharactersAreAccepted) {
  json doc = json::parse(kBase);
  doc["name"] = std::string(128, 'a');
  doc["steps"][0]["name"] = "Z9._-" + std::string(123, 'b');
  EXPECT_EQ(Errors(doc), Strings{});
  doc["name"] = std::string(129, 'a');
  doc["steps"][0]["name"] = std::string(129, 'b');
  EXPECT_EQ(Errors(doc),
            (Strings{"name: " + kNameRule, "steps[0].name: " + kNameRule}));
}

// The parser's own bound; limits.definition_steps (256 by default) is the
// engine's, tests/engine/size_limits_test.cc.
TEST(ValidateDefinitionTest, AtMost4096Steps) {
  json doc = json::parse(kBase);
  doc["steps"] = json::array();
  for (int i = 0; i < 4096; ++i) {
    doc["steps"].push_back(
        {{"name", "s" + std::to_string(i)}, {"action", "noop"}});
  }
  EXPECT_EQ(Errors(doc), Strings{});
  doc["steps"].push_back({{"name", "one-too-many"}, {"action", "noop"}});
  EXPECT_EQ(Errors(doc), Strings{"steps: must have at most 4096 steps"});
}

TEST(ValidateDefinitionTest, StepRules) {
  ExpectErrors({
      {R"({"steps": [5]})", {"steps[0]: must be an object"}},
      {R"({"steps": [{"name": "a", "action": "noop", "retries": {}}]})",
       {"steps[0]: unknown key 'retries'"}},
      {R"({"steps": [{"action": "noop"}]})", {"steps[0].name: is required"}},
      {R"({"steps": [{"name": ["a"], "action": "noop"}]})",
       {"steps[0].name: must be a string"}},
      {R"({"steps": [{"name": "a:b", "action": "noop"}]})",
       {"steps[0].name: " + kNameRule}},
      {R"({"steps": [{"name": "a", "action": "noop"},
                     {"name": "pay", "action": "noop"},
                     {"name": "b", "action": "noop"},
                     {"name": "pay", "action": "noop"}]})",
       {"steps[3].name: duplicate step name 'pay' (also steps[1])"}},
      {R"({"steps": [{"name": "a"}]})", {"steps[0].action: is required"}},
      {R"({"steps": [{"name": "a", "action": 5}]})",
       {"steps[0].action: must be a string"}},
      {R"({"steps": [{"name": "a", "action": "htp"}]})",
       {"steps[0].action: unknown action 'htp'"}},
      {R"({"steps": [{"name": "a", "action": "echo", "params": []}]})",
       {"steps[0].params: must be an object"}},
      {R"({"steps": [{"name": "a", "action": "noop", "timeout_ms": 0}]})",
       {"steps[0].timeout_ms: must be >= 1"}},
      {R"({"steps": [{"name": "a", "action": "noop", "timeout_ms": "5s"}]})",
       {"steps[0].timeout_ms: must be an integer"}},
      {R"({"steps": [{"name": "a", "action": "noop", "circuit_breaker": 1,
                      "rate_limit": true}]})",
       {"steps[0].circuit_breaker: must be a string",
        "steps[0].rate_limit: must be a string"}},
  });
}

TEST(ValidateDefinitionTest, CompensationRules) {
  ExpectErrors({
      {R"({"steps": [{"name": "a", "action": "noop", "compensate": "undo"}]})",
       {"steps[0].compensate: must be an object"}},
      {R"({"steps": [{"name": "a", "action": "noop", "compensate": {}}]})",
       {"steps[0].compensate.action: is required"}},
      {R"({"steps": [{"name": "a", "action": "noop",
                      "compensate": {"action": "noop", "name": "x"}}]})",
       {"steps[0].compensate: unknown key 'name'"}},
      {R"({"steps": [{"name": "a", "action": "noop",
                      "compensate": {"action": "undo-it"}}]})",
       {"steps[0].compensate.action: unknown action 'undo-it'"}},
      {R"({"steps": [{"name": "a", "action": "noop",
                      "compensate": {"action": "sleep", "params": {},
                                     "retry": {"max_attempts": 0},
                                     "timeout_ms": -1}}]})",
       {"steps[0].compensate.params.duration_ms: is required",
        "steps[0].compensate.retry.max_attempts: must be >= 1",
        "steps[0].compensate.timeout_ms: must be >= 1"}},
  });
}

TEST(ValidateDefinitionTest, RetryRules) {
  auto with_retry = [](const std::string& retry) {
    return R"({"steps": [{"name": "a", "action": "noop", "retry": )" + retry +
           "}]}";
  };
  const std::vector<std::pair<std::string, Strings>> cases = {
      {"[]", {"steps[0].retry: must be an object"}},
      {R"({"attempts": 3})", {"steps[0].retry: unknown key 'attempts'"}},
      {R"({"max_attempts": 0})", {"steps[0].retry.max_attempts: must be >= 1"}},
      {R"({"max_attempts": 1001})",
       {"steps[0].retry.max_attempts: must be <= 1000"}},
      {R"({"max_attempts": "3"})",
       {"steps[0].retry.max_attempts: must be an integer"}},
      {R"({"initial_backoff_ms": -1})",
       {"steps[0].retry.initial_backoff_ms: must be >= 0"}},
      {R"({"multiplier": 0.5})", {"steps[0].retry.multiplier: must be >= 1"}},
      {R"({"multiplier": "2"})",
       {"steps[0].retry.multiplier: must be a number"}},
      {R"({"max_backoff_ms": 50})",
       {"steps[0].retry.max_backoff_ms: must be >= initial_backoff_ms (100)"}},
      {R"({"initial_backoff_ms": 500, "max_backoff_ms": 400})",
       {"steps[0].retry.max_backoff_ms: must be >= initial_backoff_ms (500)"}},
      {R"({"initial_backoff_ms": 60000})",
       {"steps[0].retry.initial_backoff_ms: must be <= max_backoff_ms (30000 "
        "by default)"}},
      {R"({"jitter": 1.5})", {"steps[0].retry.jitter: must be <= 1"}},
      {R"({"jitter": -0.1})", {"steps[0].retry.jitter: must be >= 0"}},
      {R"({"non_retryable": "http_4xx"})",
       {"steps[0].retry.non_retryable: must be an array of strings"}},
      {R"({"non_retryable": ["", 4]})",
       {"steps[0].retry.non_retryable[0]: must not be empty",
        "steps[0].retry.non_retryable[1]: must be a string"}},
  };
  for (const auto& [retry, errors] : cases) {
    EXPECT_EQ(Errors(Patched(with_retry(retry).c_str())), errors) << retry;
  }
}

TEST(ValidateDefinitionTest, BuiltinActionParams) {
  ExpectErrors({
      {R"({"steps": [{"name": "a", "action": "noop", "params": {"x": 1}}]})",
       {"steps[0].params: unknown key 'x'"}},
      {R"({"steps": [{"name": "a", "action": "fail", "params": {
            "fail_attempts": -1, "error": 5, "kind": 5, "times": 1}}]})",
       {"steps[0].params: unknown key 'times'",
        "steps[0].params.fail_attempts: must be >= 0",
        "steps[0].params.error: must be a string",
        "steps[0].params.kind: must be a string"}},
      {R"({"steps": [{"name": "a", "action": "fail",
                      "params": {"fail_attempts": "2"}}]})",
       {"steps[0].params.fail_attempts: must be an integer"}},
      {R"({"steps": [{"name": "a", "action": "sleep"}]})",
       {"steps[0].params.duration_ms: is required"}},
      {R"({"steps": [{"name": "a", "action": "sleep",
                      "params": {"duration_ms": "10s"}}]})",
       {"steps[0].params.duration_ms: must be an integer"}},
      {R"({"steps": [{"name": "a", "action": "sleep",
                      "params": {"duration_ms": -5, "ms": 1}}]})",
       {"steps[0].params: unknown key 'ms'",
        "steps[0].params.duration_ms: must be >= 0"}},
      // Due times are the clock plus a duration: each is at most 100 years.
      {R"({"steps": [{"name": "a", "action": "sleep",
                      "params": {"duration_ms": 9223372036854775807}}]})",
       {"steps[0].params.duration_ms: must be <= 3155760000000"}},
      {R"({"steps": [{"name": "a", "action": "http", "timeout_ms": 3155760000001,
            "retry": {"initial_backoff_ms": 18446744073709551615,
                      "max_backoff_ms": 18446744073709551615},
            "params": {"url": "http://h", "timeout_ms": 9223372036854775807}}]})",
       {"steps[0].params.timeout_ms: must be <= 3155760000000",
        "steps[0].retry.initial_backoff_ms: must be <= 3155760000000",
        "steps[0].retry.max_backoff_ms: must be <= 3155760000000",
        "steps[0].timeout_ms: must be <= 3155760000000"}},
      {R"({"steps": [{"name": "a", "action": "exec", "params": {}}]})",
       {"steps[0].params.argv: is required"}},
      {R"({"steps": [{"name": "a", "action": "exec", "params": {"argv": []}}]})",
       {"steps[0].params.argv: must be a non-empty array of strings"}},
      {R"({"steps": [{"name": "a", "action": "exec",
                      "params": {"argv": "ls -l"}}]})",
       {"steps[0].params.argv: must be a non-empty array of strings"}},
      {R"({"steps": [{"name": "a", "action": "exec", "params": {
            "argv": ["ls", 5], "env": {"A": 1, "B=C": "x"}, "cwd": 5,
            "args": []}}]})",
       {"steps[0].params: unknown key 'args'",
        "steps[0].params.argv[1]: must be a string",
        "steps[0].params.env.A: must be a string",
        "steps[0].params.env: invalid variable name 'B=C'",
        "steps[0].params.cwd: must be a string"}},
      {R"({"steps": [{"name": "a", "action": "exec",
                      "params": {"argv": ["true"], "env": ["A=1"]}}]})",
       {"steps[0].params.env: must be an object"}},
      {R"({"steps": [{"name": "a", "action": "http", "params": {}}]})",
       {"steps[0].params.url: is required"}},
      {R"({"steps": [{"name": "a", "action": "http",
                      "params": {"url": "ftp://x"}}]})",
       {"steps[0].params.url: must start with http:// or https://"}},
      {R"({"steps": [{"name": "a", "action": "http", "params": {"url": 5}}]})",
       {"steps[0].params.url: must be a string"}},
      {R"({"steps": [{"name": "a", "action": "http", "params": {
            "url": "http://h", "method": "get", "headers": {"X": 1},
            "timeout": 5}}]})",
       {"steps[0].params: unknown key 'timeout'",
        "steps[0].params.method: must be one of GET, POST, PUT, PATCH, "
        "DELETE, HEAD",
        "steps[0].params.headers.X: must be a string"}},
      {R"({"steps": [{"name": "a", "action": "http", "params": {
            "url": "http://h", "method": 1, "headers": []}}]})",
       {"steps[0].params.method: must be one of GET, POST, PUT, PATCH, "
        "DELETE, HEAD",
        "steps[0].params.headers: must be an object"}},
  });
}

TEST(ValidateDefinitionTest, WholeTemplatesStandForValuesOfAnyType) {
  ExpectErrors({
      {R"({"steps": [{"name": "a", "action": "sleep",
                      "params": {"duration_ms": "${input.wait}"}}]})",
       {}},
      {R"({"steps": [{"name": "a", "action": "fail",
                      "params": {"fail_attempts": "${input.n}"}}]})",
       {}},
      {R"({"steps": [{"name": "a", "action": "exec", "params": {
            "argv": "${input.argv}", "env": "${input.env}"}}]})",
       {}},
      {R"({"steps": [{"name": "a", "action": "http", "params": {
            "url": "${input.base_url}/flights", "method": "${input.method}",
            "headers": "${input.headers}", "body": {"x": "${input}"}}}]})",
       {}},
      {R"({"steps": [{"name": "a", "action": "http",
                      "params": {"url": "HTTPS://EXAMPLE.COM"}}]})",
       {}},
      // Text around a template makes it a string again.
      {R"({"steps": [{"name": "a", "action": "sleep",
                      "params": {"duration_ms": "${input.wait}ms"}}]})",
       {"steps[0].params.duration_ms: must be an integer"}},
  });
}

TEST(ValidateDefinitionTest, NativeActionsAreKnownAndTheirParamsUnchecked) {
  const ActionNames native = {"charge-card"};
  ExpectErrors(
      {
          {R"({"steps": [{"name": "a", "action": "charge-card",
                          "params": {"anything": [1, {"goes": true}]},
                          "compensate": {"action": "charge-card"}}]})",
           {}},
          {R"({"steps": [{"name": "a", "action": "refund"}]})",
           {"steps[0].action: unknown action 'refund'"}},
          // Templates in native params are still checked.
          {R"({"steps": [{"name": "a", "action": "charge-card",
                          "params": {"x": "${nope}"}}]})",
           {"steps[0].params.x: unknown reference '${nope}'"}},
      },
      native);
}

TEST(ValidateDefinitionTest, TemplateRules) {
  ExpectErrors({
      {R"({"steps": [
            {"name": "reserve", "action": "noop"},
            {"name": "book", "action": "http", "params": {
              "url": "http://h/${steps.reserve.output.id}",
              "body": {"all": "${steps.reserve.output}", "in": "${input}",
                       "key": "${step.idempotency_key}",
                       "n": "${step.attempt}", "saga": "${saga.id}"}}}]})",
       {}},
      {R"({"steps": [
            {"name": "reserve", "action": "noop"},
            {"name": "book", "action": "http",
             "params": {"url": "${steps.charge.output.id}"}},
            {"name": "charge", "action": "noop"}]})",
       {"steps[1].params.url: ${steps.charge.output.id} refers to step "
        "'charge', which does not run before this step"}},
      {R"({"steps": [
            {"name": "reserve", "action": "noop"},
            {"name": "book", "action": "http",
             "params": {"url": "${steps.chrage.output.id}"}}]})",
       {"steps[1].params.url: ${steps.chrage.output.id} refers to unknown "
        "step 'chrage'"}},
      {R"({"steps": [{"name": "a", "action": "echo",
                      "params": {"x": "${steps.a.output}"}}]})",
       {"steps[0].params.x: ${steps.a.output} refers to step 'a', which does "
        "not run before this step"}},
      // A compensation runs after its step: it may use the step's output.
      {R"({"steps": [{"name": "a", "action": "echo", "compensate": {
            "action": "echo", "params": {"x": "${steps.a.output.id}"}}}]})",
       {}},
      {R"({"steps": [
            {"name": "a", "action": "echo", "compensate": {
              "action": "echo", "params": {"x": ["${steps.b.output}"]}}},
            {"name": "b", "action": "noop"}]})",
       {"steps[0].compensate.params.x[0]: ${steps.b.output} refers to step "
        "'b', which does not run before this compensation"}},
      {R"({"steps": [{"name": "a", "action": "echo", "params": {
            "a": "${input.x", "b": ["${}"], "c": "${steps.a}",
            "d": "$${literal}"}}]})",
       {"steps[0].params.a: unterminated ${",
        "steps[0].params.b[0]: empty reference '${}'",
        "steps[0].params.c: unknown reference '${steps.a}'"}},
      {R"({"steps": [{"name": "a", "action": "noop", "compensate": {
            "action": "echo", "params": {"x": "${inptu.id}"}}}]})",
       {"steps[0].compensate.params.x: unknown reference '${inptu.id}'"}},
      // A dotted step name is referenced as written.
      {R"({"steps": [{"name": "reserve.flight", "action": "noop"},
                     {"name": "b", "action": "echo",
                      "params": {"x": "${steps.reserve.flight.output.pnr}"}}]})",
       {}},
  });
}

TEST(ValidateDefinitionTest, ReportsEveryProblemInDocumentOrder) {
  const json doc = json::parse(R"({
    "name": "bad name", "version": 0, "extra": true,
    "steps": [
      {"name": "a", "action": "htp", "retry": {"max_attempts": 0}},
      {"name": "a", "action": "sleep", "timeout_ms": 0}
    ]
  })");
  EXPECT_EQ(
      Errors(doc),
      (Strings{"unknown key 'extra'", "name: " + kNameRule,
               "version: must be >= 1", "steps[0].action: unknown action 'htp'",
               "steps[0].retry.max_attempts: must be >= 1",
               "steps[1].name: duplicate step name 'a' (also steps[0])",
               "steps[1].params.duration_ms: is required",
               "steps[1].timeout_ms: must be >= 1"}));
}

// The rejected registration shown at the end of docs/workflows.md.
TEST(ParseDefinitionTest, DocumentedRejectionExample) {
  const json doc = json::parse(R"({
    "name": "pay flow", "version": 0,
    "steps": [
      {"name": "charge", "action": "htp", "retry": {"max_attempts": 0}},
      {"name": "charge", "action": "sleep", "params": {"duration": 5}},
      {"name": "notify", "action": "http",
       "params": {"url": "${steps.recipt.output.url}"}}
    ]
  })");
  Result<WorkflowDefinition> def = ParseDefinition(doc, {});
  ASSERT_FALSE(def.ok());
  EXPECT_EQ(def.status().message(),
            "invalid workflow definition: name: must match "
            "[A-Za-z0-9][A-Za-z0-9._-]{0,127}; version: must be >= 1; "
            "steps[0].action: unknown action 'htp'; "
            "steps[0].retry.max_attempts: must be >= 1; steps[1].name: "
            "duplicate step name 'charge' (also steps[0]); steps[1].params: "
            "unknown key 'duration'; steps[1].params.duration_ms: is "
            "required; steps[2].params.url: ${steps.recipt.output.url} "
            "refers to unknown step 'recipt'");
}

TEST(DefinitionErrorTest, ToStringOmitsAnEmptyPath) {
  EXPECT_EQ((DefinitionError{"steps[2].retry.max_attempts", "must be >= 1"})
                .ToString(),
            "steps[2].retry.max_attempts: must be >= 1");
  EXPECT_EQ((DefinitionError{"", "unknown key 'x'"}).ToString(),
            "unknown key 'x'");
}

// ---- ParseDefinition --------------------------------------------------------

TEST(ParseDefinitionTest, MinimalDefinitionGetsEveryDefault) {
  Result<WorkflowDefinition> def = ParseDefinition(json::parse(kBase), {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->name, "wf");
  EXPECT_EQ(def->version, 1u);
  EXPECT_EQ(def->description, "");
  EXPECT_TRUE(def->input_schema.is_null());
  EXPECT_EQ(def->on_failure, OnFailure::kCompensate);
  EXPECT_EQ(def->max_concurrency, std::nullopt);
  ASSERT_EQ(def->steps.size(), 1u);
  const StepSpec& step = def->steps[0];
  EXPECT_EQ(step.name, "a");
  EXPECT_EQ(step.run.action, "noop");
  EXPECT_EQ(step.run.params, json::object());
  EXPECT_EQ(step.run.retry, RetryPolicy{});
  EXPECT_EQ(step.run.retry.max_attempts, 3u);
  EXPECT_EQ(step.run.retry.initial_backoff_ms, 100u);
  EXPECT_EQ(step.run.retry.multiplier, 2.0);
  EXPECT_EQ(step.run.retry.max_backoff_ms, 30000u);
  EXPECT_EQ(step.run.retry.jitter, 0.2);
  EXPECT_EQ(step.run.retry.non_retryable, Strings{"http_4xx"});
  EXPECT_EQ(step.run.timeout_ms, std::nullopt);
  EXPECT_EQ(step.compensate, std::nullopt);
  EXPECT_EQ(step.circuit_breaker, "");
  EXPECT_EQ(step.rate_limit, "");
}

TEST(ParseDefinitionTest, FullDefinitionFillsTheModel) {
  const json doc = json::parse(R"({
    "name": "trip-booking", "version": 7, "description": "Books a trip",
    "input_schema": {"type": "object", "required": ["trip_id"]},
    "on_failure": "park", "max_concurrency": 50,
    "steps": [
      {"name": "reserve-flight", "action": "http",
       "params": {"method": "POST", "url": "http://h/flights"},
       "retry": {"max_attempts": 5, "initial_backoff_ms": 200,
                 "multiplier": 1.5, "max_backoff_ms": 10000, "jitter": 0,
                 "non_retryable": ["http_4xx", "connection"]},
       "timeout_ms": 5000, "circuit_breaker": "flights-api",
       "rate_limit": "flights-rl",
       "compensate": {"action": "http",
                      "params": {"method": "DELETE",
                                 "url": "http://h/${steps.reserve-flight.output.id}"},
                      "retry": {"max_attempts": 10, "non_retryable": []},
                      "timeout_ms": 3000}},
      {"name": "notify", "action": "charge", "params": {"to": "${input.email}"}}
    ]
  })");
  Result<WorkflowDefinition> def = ParseDefinition(doc, {"charge"});
  ASSERT_TRUE(def.ok()) << def.status().ToString();

  WorkflowDefinition want;
  want.name = "trip-booking";
  want.version = 7;
  want.description = "Books a trip";
  want.input_schema = doc["input_schema"];
  want.on_failure = OnFailure::kPark;
  want.max_concurrency = 50;
  StepSpec flight;
  flight.name = "reserve-flight";
  flight.run.action = "http";
  flight.run.params = {{"method", "POST"}, {"url", "http://h/flights"}};
  flight.run.retry = {.max_attempts = 5,
                      .initial_backoff_ms = 200,
                      .multiplier = 1.5,
                      .max_backoff_ms = 10000,
                      .jitter = 0,
                      .non_retryable = {"http_4xx", "connection"}};
  flight.run.timeout_ms = 5000;
  flight.circuit_breaker = "flights-api";
  flight.rate_limit = "flights-rl";
  ActionSpec undo;
  undo.action = "http";
  undo.params = doc["steps"][0]["compensate"]["params"];
  undo.retry.max_attempts = 10;  // the rest keep RetryPolicy's defaults
  undo.retry.non_retryable = {};
  undo.timeout_ms = 3000;
  flight.compensate = undo;
  flight.path = "reserve-flight";
  flight.where = "steps[0]";
  StepSpec notify;
  notify.name = "notify";
  notify.path = "notify";
  notify.where = "steps[1]";
  notify.run.action = "charge";
  notify.run.params = {{"to", "${input.email}"}};
  want.steps = {flight, notify};

  EXPECT_EQ(def->name, want.name);
  EXPECT_EQ(def->version, want.version);
  EXPECT_EQ(def->description, want.description);
  EXPECT_EQ(def->input_schema, want.input_schema);
  EXPECT_EQ(def->on_failure, want.on_failure);
  EXPECT_EQ(def->max_concurrency, want.max_concurrency);
  ASSERT_EQ(def->steps.size(), 2u);
  EXPECT_TRUE(def->steps[0] == want.steps[0]);
  EXPECT_TRUE(def->steps[1] == want.steps[1]);
  EXPECT_EQ(def->StepIndex("reserve-flight"), 0);
  EXPECT_EQ(def->StepIndex("notify"), 1);
  EXPECT_EQ(def->StepIndex("missing"), -1);
}

TEST(ParseDefinitionTest, ErrorsBecomeOneInvalidArgumentListingAll) {
  Result<WorkflowDefinition> def = ParseDefinition(
      json::parse(R"({"name": "wf", "version": 0, "steps": []})"), {});
  ASSERT_FALSE(def.ok());
  EXPECT_TRUE(def.status().IsInvalidArgument());
  EXPECT_EQ(def.status().message(),
            "invalid workflow definition: version: must be >= 1; steps: must "
            "have at least one step");
}

// ---- ErrorKindMatches, IsBuiltinAction ----------------------------------

TEST(ErrorKindMatchesTest, ExactKindsAndHttpClasses) {
  struct Case {
    const char* pattern;
    const char* kind;
    bool matches;
  };
  const std::vector<Case> cases = {
      {"timeout", "timeout", true},
      {"timeout", "connection", false},
      {"exit_code:3", "exit_code:3", true},
      {"exit_code:3", "exit_code:4", false},
      {"http_404", "http_404", true},
      {"http_404", "http_400", false},
      {"http_4xx", "http_400", true},
      {"http_4xx", "http_404", true},
      {"http_4xx", "http_499", true},
      {"http_4xx", "http_408", false},  // timeouts are worth retrying
      {"http_4xx", "http_429", false},  // so is throttling
      {"http_4xx", "http_500", false},
      {"http_4xx", "http_4xx", true},
      {"http_4xx", "http_4", false},
      {"http_4xx", "http_40x", false},
      {"http_4xx", "http_4000", false},
      {"http_5xx", "http_500", true},
      {"http_5xx", "http_503", true},
      {"http_5xx", "http_599", true},
      {"http_5xx", "http_499", false},
      {"http_5xx", "http_600", false},
      {"http_3xx", "http_301", false},  // only 4xx and 5xx are classes
      {"failed", "failed", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorKindMatches(c.pattern, c.kind), c.matches)
        << c.pattern << " vs " << c.kind;
  }
}

TEST(IsBuiltinActionTest, ExactlyTheSixBuiltins) {
  for (const char* name : {"noop", "echo", "fail", "sleep", "exec", "http"}) {
    EXPECT_TRUE(IsBuiltinAction(name)) << name;
  }
  for (const char* name : {"", "HTTP", "shell", "https", "noop "}) {
    EXPECT_FALSE(IsBuiltinAction(name)) << name;
  }
}

// ---- docs/examples ----------------------------------------------------------

TEST(ExamplesTest, EveryShippedExampleIsAValidDefinition) {
  int count = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(CDE_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    ++count;
    std::ifstream in(entry.path());
    const json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(doc.is_discarded()) << entry.path() << ": not JSON";
    EXPECT_EQ(Errors(doc), Strings{}) << entry.path();
  }
  EXPECT_GE(count, 3);
}

}  // namespace
}  // namespace cde
