// What stands between a planned attempt and its dispatch: circuit breakers
// against a real failing HTTP server, outbound rate limits, run-time
// concurrency limits, and the repeated-failure alert.
#include <gmock/gmock.h>

#include "engine/engine.h"
#include "tests/engine/engine_harness.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;
using ::testing::HasSubstr;

using test::Workflow;

json Fast(int attempts) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", 1},
          {"max_backoff_ms", 2},
          {"jitter", 0},
          {"non_retryable", json::array()}};
}

// An engine whose workflow "call" makes one http request to a real local
// server answering `status`, under breaker `policy`.
class CircuitBreakerTest : public ::testing::Test {
 protected:
  void Serve(int status, BreakerPolicy policy, int attempts) {
    server_.Start();
    server_.Respond("/svc", status, "scripted");
    EngineOptions options;
    options.data_dir = "";  // a memory store
    options.clock = clock_;
    options.limits.breaker_default = policy;
    ASSERT_OK(h_.Open(std::move(options)));
    ASSERT_OK(h_.Register(Workflow("call",
                                   {{{"name", "get"},
                                     {"action", "http"},
                                     {"params", {{"url", server_.url("/svc")}}},
                                     {"retry", Fast(attempts)}}}))
                  .status());
    key_ = "127.0.0.1:" + std::to_string(server_.port());
  }
  void TearDown() override { EXPECT_OK(h_.Close()); }

  // Runs the loop until saga `id` waits for a retry's backoff, its
  // attempt's answer in.
  bool UntilBackoff(const std::string& id) {
    return h_.RunUntil([&] {
      const Saga* s = h_.engine().FindActive(id);
      return s != nullptr && s->waits.size() == 1 &&
             s->waits[0].kind == Wait::Kind::kBackoff;
    });
  }

  // Backoffs and the breaker's cool-down pass on it; the requests are real.
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  TestHttpServer server_;
  EngineHarness h_;
  std::string key_;
};

TEST_F(CircuitBreakerTest,
       OpensOnFailuresDefersWithoutSpendingRetriesAndCloses) {
  Serve(503,
        {.failure_threshold = 2,
         .failure_ratio = 0,
         .cool_down_ms = 5000,
         .half_open_probes = 1},
        4);
  auto r = h_.Start({.workflow = "call"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(UntilBackoff(r->saga_id));
  ASSERT_TRUE(h_.Pass(*clock_, 2));
  ASSERT_TRUE(h_.RunUntil([&] { return server_.requests().size() == 2; }));
  ASSERT_TRUE(UntilBackoff(r->saga_id));
  server_.Respond("/svc", 200, R"({"ok": true})");
  // Open: the third attempt waits for the cool-down instead of failing.
  ASSERT_TRUE(h_.Pass(*clock_, 2));
  ASSERT_TRUE(
      h_.RunUntil([&] { return h_.engine().stats().waiting_at_gates == 1; }));
  EngineStats st = h_.engine().stats();
  ASSERT_EQ(st.breakers.size(), 1u);
  EXPECT_EQ(st.breakers[0].key, key_);
  EXPECT_EQ(st.breakers[0].state, BreakerState::kOpen);
  // Not a moment before the cool-down has passed.
  ASSERT_TRUE(h_.Pass(*clock_, 4990));
  EXPECT_EQ(h_.engine().stats().waiting_at_gates, 1u);
  EXPECT_EQ(server_.requests().size(), 2u);
  ASSERT_TRUE(h_.Pass(*clock_, 10));
  // Half-open after the cool-down: the probe succeeds and the saga
  // completes on its third attempt of four.
  auto done = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted);
  EXPECT_EQ(done->body["steps"][0]["attempts"], 3);
  EXPECT_EQ(server_.requests().size(), 3u);
  st = h_.engine().stats();
  EXPECT_EQ(st.breakers[0].state, BreakerState::kClosed);
  EXPECT_EQ(st.breakers[0].opened_total, 1u);
  const std::string text = h_.engine().metrics().Render();
  for (const char* edge : {R"(key="KEY",from="closed",to="open"} 1)",
                           R"(key="KEY",from="open",to="half_open"} 1)",
                           R"(key="KEY",from="half_open",to="closed"} 1)"}) {
    std::string line = edge;
    line.replace(line.find("KEY"), 3, key_);
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST_F(CircuitBreakerTest, ClientErrorsDoNotOpenIt) {
  Serve(400, {.failure_threshold = 1, .failure_ratio = 0}, 1);
  for (int i = 0; i < 3; ++i) {
    auto r = h_.Start({.workflow = "call"});
    ASSERT_OK(r.status());
    ASSERT_OK(h_.AwaitInactive(r->saga_id).status());
  }
  EXPECT_EQ(server_.requests().size(), 3u);
  EXPECT_EQ(h_.engine().stats().breakers[0].state, BreakerState::kClosed);
}

TEST_F(CircuitBreakerTest, CancelOfASagaWaitingAtAnOpenBreakerDoesNotWait) {
  Serve(503,
        {.failure_threshold = 1, .failure_ratio = 0, .cool_down_ms = 60000}, 1);
  auto first = h_.Start({.workflow = "call"});  // fails and opens it
  ASSERT_OK(first.status());
  ASSERT_OK(h_.AwaitInactive(first->saga_id).status());
  auto held = h_.Start({.workflow = "call"});
  ASSERT_OK(held.status());
  ASSERT_TRUE(
      h_.RunUntil([&] { return h_.engine().stats().waiting_at_gates == 1; }));
  ASSERT_OK(h_.Cancel(held->saga_id).status());
  auto rec = h_.AwaitInactive(held->saga_id);  // not a minute later
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCancelled);
  EXPECT_EQ(server_.requests().size(), 1u);  // its attempt never went out
  EXPECT_EQ(h_.engine().stats().waiting_at_gates, 0u);
}

// A step that names no breaker reports to its URL's host:port, whatever the
// case the URL spells the host in: one downstream, one breaker.
TEST_F(CircuitBreakerTest, TheHostOfABreakerKeyIsCaseInsensitive) {
  Serve(400, {.failure_threshold = 1, .failure_ratio = 0}, 1);
  const std::string port = std::to_string(server_.port());
  for (const std::string host : {"LocalHost", "localhost"}) {
    const std::string url = "http://" + host + ":" + port + "/svc";
    ASSERT_OK(h_.Register(Workflow(host, {{{"name", "get"},
                                           {"action", "http"},
                                           {"params", {{"url", url}}},
                                           {"retry", Fast(1)}}}))
                  .status());
  }
  for (const char* workflow : {"LocalHost", "localhost"}) {
    auto r = h_.Start({.workflow = workflow});
    ASSERT_OK(r.status());
    ASSERT_OK(h_.AwaitInactive(r->saga_id).status());
  }
  const EngineStats st = h_.engine().stats();
  ASSERT_EQ(st.breakers.size(), 1u);
  EXPECT_EQ(st.breakers[0].key, "localhost:" + port);
}

// Rate limits: clock_test.cc, on a clock the test advances.

TEST(RunTimeLimitsTest, MaxConcurrencyChangesWhileSagasWait) {
  HeldAction held;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"held", held.AsAction()}}));
  EngineLimits limits;
  limits.max_concurrency["busy"] = 1;
  h.engine().SetLimits(limits);
  ASSERT_OK(h.Register(Workflow("busy", {{{"name", "s"}, {"action", "held"}}}))
                .status());
  for (int i = 0; i < 3; ++i) ASSERT_OK(h.Start({.workflow = "busy"}).status());
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
  EXPECT_EQ(h.engine().stats().queued, 2u);
  limits.max_concurrency["busy"] = 3;
  h.engine().SetLimits(limits);
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 3; }));
  while (held.Complete(ActionResult::Success(nullptr))) {
  }
  ASSERT_OK(h.Close());
}

TEST(AlertTest, RepeatedFailuresOfAWorkflowAlertOncePerWindow) {
  EngineHarness h;
  ASSERT_OK(h.Open(""));
  EngineLimits limits;
  limits.alert_failures = 3;
  limits.alert_window_ms = 60000;
  h.engine().SetLimits(limits);
  ASSERT_OK(h.Register(Workflow("boom", {{{"name", "s"},
                                          {"action", "fail"},
                                          {"retry", Fast(1)}}}))
                .status());
  for (int i = 0; i < 6; ++i) {
    auto r = h.Start({.workflow = "boom"});
    ASSERT_OK(r.status());
    ASSERT_OK(h.AwaitInactive(r->saga_id).status());
  }
  const std::string text = h.engine().metrics().Render();
  EXPECT_THAT(
      text,
      HasSubstr(R"(cde_workflow_failure_alerts_total{workflow="boom"} 1)"));
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde
