// The engine with real I/O: `http` steps against a real HTTP server on
// 127.0.0.1 started by the test, and `exec` steps as real child processes.
#include <gmock/gmock.h>

#include "engine/engine.h"
#include "tests/engine/engine_harness.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

json Fast(int attempts) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", 1},
          {"max_backoff_ms", 5},
          {"jitter", 0}};
}

class EngineIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    ASSERT_OK(h_.Open(""));
  }

  json HttpStep(const std::string& name, const std::string& path,
                json compensate = nullptr) {
    json s = {{"name", name},
              {"action", "http"},
              {"params",
               {{"method", "POST"},
                {"url", server_.url(path)},
                {"body", {{"trip", "${input.trip}"}}}}},
              {"retry", Fast(2)}};
    if (!compensate.is_null()) s["compensate"] = compensate;
    return s;
  }
  json Undo(const std::string& path) {
    return {{"action", "http"},
            {"params", {{"method", "DELETE"}, {"url", server_.url(path)}}},
            {"retry", Fast(2)}};
  }

  std::vector<std::string> Calls() {
    std::vector<std::string> out;
    for (const auto& r : server_.requests())
      out.push_back(r.method + " " + r.path);
    return out;
  }

  TestHttpServer server_;
  test::EngineHarness h_;
};

TEST_F(EngineIoTest, HttpStepsCompleteAndCarryIdempotencyKeys) {
  server_.Respond("/flights", 200, R"({"id": "F1"})");
  server_.Respond("/hotels", 201, R"({"id": "H7"})");
  ASSERT_OK(h_.Register({{"name", "trip"},
                         {"version", 1},
                         {"steps",
                          {HttpStep("flight", "/flights"),
                           HttpStep("hotel", "/hotels")}}})
                .status());
  auto started = h_.Start({.workflow = "trip", .input = {{"trip", 9}}});
  ASSERT_OK(started.status());
  auto rec = h_.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][1]["output"], json({{"id", "H7"}}));
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].header("Idempotency-Key"), started->saga_id + "/flight/1");
  EXPECT_EQ(json::parse(reqs[0].body), json({{"trip", 9}}));
}

TEST_F(EngineIoTest, FailingHttpStepCompensatesTheBookedOnesInReverse) {
  server_.Respond("/flights", 200, R"({"id": "F1"})");
  server_.Respond("/flights/F1", 204, "");
  server_.Respond("/hotels", 200, R"({"id": "H7"})");
  server_.Respond("/hotels/H7", 204, "");
  server_.Respond("/cars", 503, "no cars today");
  ASSERT_OK(h_.Register({{"name", "trip"},
                         {"version", 1},
                         {"steps",
                          {HttpStep("flight", "/flights",
                                    Undo("/flights/${steps.flight.output.id}")),
                           HttpStep("hotel", "/hotels",
                                    Undo("/hotels/${steps.hotel.output.id}")),
                           HttpStep("car", "/cars")}}})
                .status());
  auto started = h_.Start({.workflow = "trip", .input = {{"trip", 1}}});
  ASSERT_OK(started.status());
  auto rec = h_.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(rec->body["steps"][2]["error"]["kind"], "http_503");
  EXPECT_THAT(Calls(), ElementsAre("POST /flights", "POST /hotels",
                                   "POST /cars", "POST /cars",
                                   "DELETE /hotels/H7", "DELETE /flights/F1"));
  EXPECT_EQ(server_.requests()[5].header("Idempotency-Key"),
            started->saga_id + "/flight/compensate/1");
}

TEST_F(EngineIoTest, Http404IsNotRetried) {
  ASSERT_OK(h_.Register({{"name", "w"},
                         {"version", 1},
                         {"steps", {HttpStep("missing", "/nothing-here")}}})
                .status());
  auto started = h_.Start({.workflow = "w", .input = {{"trip", 1}}});
  ASSERT_OK(started.status());
  ASSERT_OK(h_.AwaitInactive(started->saga_id).status());
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(EngineIoTest, ExecStepsPassJsonOutputsAlong) {
  ASSERT_OK(
      h_.Register({{"name", "build"},
                   {"version", 1},
                   {"steps",
                    {{{"name", "compile"},
                      {"action", "exec"},
                      {"params",
                       {{"argv",
                         {"/bin/sh", "-c",
                          "printf '{\"artifact\": \"app-%s\", \"key\": "
                          "\"%s\"}' \"$V\" \"$CDE_IDEMPOTENCY_KEY\""}},
                        {"env", {{"V", "${input.version}"}}}}}},
                     {{"name", "ship"},
                      {"action", "exec"},
                      {"params",
                       {{"argv", {"/bin/sh", "-c", "cat"}},
                        {"stdin", "${steps.compile.output.artifact}"}}}}}}})
          .status());
  auto started = h_.Start({.workflow = "build", .input = {{"version", "1.2"}}});
  ASSERT_OK(started.status());
  auto rec = h_.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][0]["output"],
            json({{"artifact", "app-1.2"},
                  {"key", started->saga_id + "/compile/1"}}));
  EXPECT_EQ(rec->body["steps"][1]["output"], json({{"stdout", "app-1.2"}}));
}

TEST_F(EngineIoTest, ExecTimeoutKillsTheChildAndRetries) {
  ASSERT_OK(h_.Register({{"name", "slow"},
                         {"version", 1},
                         {"steps",
                          {{{"name", "hang"},
                            {"action", "exec"},
                            {"params", {{"argv", {"/bin/sleep", "30"}}}},
                            {"timeout_ms", 50},
                            {"retry", Fast(2)}}}}})
                .status());
  const auto t0 = std::chrono::steady_clock::now();
  auto started = h_.Start({.workflow = "slow"});
  ASSERT_OK(started.status());
  auto rec = h_.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(rec->body["steps"][0]["attempts"], 2);
  EXPECT_EQ(rec->body["steps"][0]["error"]["kind"], "timeout");
  // Far less than the 2 x 30 s the children would sleep: they were killed.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(25));
  EXPECT_EQ(h_.engine().stats().attempts_in_flight, 0u);
}

TEST_F(EngineIoTest, ExecExitCodeListedAsNonRetryableFailsAtOnce) {
  ASSERT_OK(
      h_.Register(
            {{"name", "x"},
             {"version", 1},
             {"steps",
              {{{"name", "check"},
                {"action", "exec"},
                {"params",
                 {{"argv", {"/bin/sh", "-c", "echo bad >&2; exit 3"}}}},
                {"retry",
                 {{"max_attempts", 5}, {"non_retryable", {"exit_code:3"}}}}}}}})
          .status());
  auto started = h_.Start({.workflow = "x"});
  ASSERT_OK(started.status());
  auto rec = h_.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->body["steps"][0]["attempts"], 1);
  EXPECT_EQ(rec->body["steps"][0]["error"]["kind"], "exit_code:3");
  EXPECT_NE(
      rec->body["steps"][0]["error"]["message"].get<std::string>().find("bad"),
      std::string::npos);
}

}  // namespace
}  // namespace cde
