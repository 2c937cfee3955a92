// The http action against a real server on 127.0.0.1: success and failure
// statuses, what is sent (method, body, headers, Idempotency-Key), connection
// errors, timeouts, abort and concurrency. Every test ends with Close() and
// a loop that closes cleanly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "engine/async_action.h"
#include "tests/engine/async_action_fixture.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

class HttpActionTest : public AsyncActionFixture {
 protected:
  HttpActionTest() : AsyncActionFixture("trip", "charge", 2) {}
  void SetUp() override {
    Init([](uv_loop_t* loop) {
      return NewHttpAction(loop, std::make_shared<DestinationPolicy>(),
                           /*client=*/false);
    });
    server_.Start();
  }

  void TearDown() override {
    CloseAndDrain();
    server_.Stop();
  }

  ActionResult Get(const std::string& path) {
    return Run({{"url", server_.url(path)}});
  }

  // An attempt of a saga with correlation id "req-7" and trace kTraceId.
  AttemptRequest Traced(json params) {
    AttemptRequest r = Request(std::move(params));
    r.correlation_id = "req-7";
    r.trace_id = kTraceId;
    return r;
  }

  // Runs the attempt `r` until it completes.
  ActionResult RunRequest(const AttemptRequest& r) {
    std::optional<ActionResult> result;
    action_->Start(r, [&](ActionResult got) { result = std::move(got); });
    while (!result.has_value() && uv_run(&loop_, UV_RUN_ONCE) != 0) {
    }
    return result.value_or(ActionResult::Failure("none", "no result"));
  }

  static constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

  TestHttpServer server_;
};

TEST_F(HttpActionTest, JsonBodyOf2xxIsTheOutput) {
  server_.Respond("/order", 200, R"({"id": "A1", "total": 12.5})");
  ActionResult r = Get("/order");
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json::parse(R"({"id": "A1", "total": 12.5})"));
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].method, "GET");
  EXPECT_EQ(server_.requests()[0].path, "/order");
}

TEST_F(HttpActionTest, TextBodyOf2xxIsWrappedWithTheStatus) {
  server_.Respond("/made", 201, "created it");
  ActionResult r = Get("/made");
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"status", 201}, {"body", "created it"}}));

  server_.Respond("/empty", 204, "");
  r = Get("/empty");
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"status", 204}}));
}

TEST_F(HttpActionTest, Non2xxFailsWithTheStatusAsKind) {
  server_.Respond("/busy", 503, "try later");
  ActionResult r = Get("/busy");
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "http_503");
  EXPECT_EQ(r.error.message, "HTTP 503: try later");

  r = Get("/nothing-here");  // unscripted: 404
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "http_404");
  EXPECT_EQ(r.error.message, "HTTP 404: not found");
}

TEST_F(HttpActionTest, ErrorMessageKeepsTheFirst2KiBOfTheBody) {
  server_.Respond("/big-error", 500, std::string(10000, 'e'));
  ActionResult r = Get("/big-error");
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "http_500");
  EXPECT_EQ(r.error.message, "HTTP 500: " + std::string(2048, 'e'));
}

TEST_F(HttpActionTest, RedirectsAreNotFollowed) {
  server_.Respond("/moved", 302, "elsewhere");
  ActionResult r = Get("/moved");
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "http_302");
}

TEST_F(HttpActionTest, JsonBodyIsPostedWithContentTypeAndIdempotencyKey) {
  server_.Respond("/charges", 200, R"({"charged": true})");
  ActionResult r = Run({{"method", "POST"},
                        {"url", server_.url("/charges")},
                        {"body", {{"amount", 42}, {"currency", "EUR"}}}});
  ASSERT_TRUE(r.ok) << r.error.message;
  ASSERT_EQ(server_.requests().size(), 1u);
  const TestHttpServer::Request got = server_.requests()[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(json::parse(got.body), json({{"amount", 42}, {"currency", "EUR"}}));
  EXPECT_EQ(got.header("Content-Type"), "application/json");
  EXPECT_EQ(got.header("Idempotency-Key"), "01SAGA/charge/2");
}

TEST_F(HttpActionTest, CustomHeadersAndStringBodiesAreSentAsGiven) {
  server_.Respond("/items/7", 200, "{}");
  ActionResult r =
      Run({{"method", "PUT"},
           {"url", server_.url("/items/7?force=1")},
           {"headers", {{"X-Trace", "abc 123"}, {"Content-Type", "text/csv"}}},
           {"body", "a,b\n1,2\n"}});
  ASSERT_TRUE(r.ok) << r.error.message;
  ASSERT_EQ(server_.requests().size(), 1u);
  const TestHttpServer::Request got = server_.requests()[0];
  EXPECT_EQ(got.method, "PUT");
  EXPECT_EQ(got.path, "/items/7?force=1");
  EXPECT_EQ(got.header("X-Trace"), "abc 123");
  EXPECT_EQ(got.header("Content-Type"), "text/csv");
  EXPECT_EQ(got.body, "a,b\n1,2\n");
  EXPECT_EQ(got.header("Idempotency-Key"), "01SAGA/charge/2");
}

TEST_F(HttpActionTest, EveryMethodArrivesAsItself) {
  server_.Respond("/m", 200, "{}");
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}) {
    ActionResult r = Run({{"method", method}, {"url", server_.url("/m")}});
    ASSERT_TRUE(r.ok) << method << ": " << r.error.message;
    EXPECT_EQ(server_.requests().back().method, method);
    EXPECT_EQ(server_.requests().back().body, "");
  }
}

TEST_F(HttpActionTest, EveryRequestCarriesTheCorrelationIdAndATraceparent) {
  server_.Respond("/traced", 200, "{}");
  for (int i = 0; i < 2; ++i) {
    ActionResult r = RunRequest(Traced({{"url", server_.url("/traced")}}));
    ASSERT_TRUE(r.ok) << r.error.message;
  }
  ASSERT_EQ(server_.requests().size(), 2u);
  std::vector<std::string> spans;
  for (const TestHttpServer::Request& got : server_.requests()) {
    EXPECT_EQ(got.header("X-Correlation-ID"), "req-7");
    const std::string tp = got.header("traceparent");
    // 00-<the saga's trace id>-<16 hex span id>-01
    ASSERT_EQ(tp.size(), 55u) << tp;
    EXPECT_EQ(tp.substr(0, 3), "00-");
    EXPECT_EQ(tp.substr(3, 32), kTraceId);
    EXPECT_EQ(tp.substr(35, 1), "-");
    const std::string span = tp.substr(36, 16);
    EXPECT_EQ(span.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(span, "0000000000000000");
    EXPECT_EQ(tp.substr(52), "-01");
    spans.push_back(span);
  }
  EXPECT_NE(spans[0], spans[1]) << "a fresh span id per attempt";
}

TEST_F(HttpActionTest, AStepsOwnCorrelationAndTraceHeadersWin) {
  server_.Respond("/own", 200, "{}");
  const std::string own_tp =
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  ActionResult r = RunRequest(Traced(
      {{"url", server_.url("/own")},
       {"headers",
        {{"x-correlation-id", "from-the-step"}, {"Traceparent", own_tp}}}}));
  ASSERT_TRUE(r.ok) << r.error.message;
  ASSERT_EQ(server_.requests().size(), 1u);
  const TestHttpServer::Request got = server_.requests()[0];
  EXPECT_EQ(got.header("X-Correlation-ID"), "from-the-step");
  EXPECT_EQ(got.header("traceparent"), own_tp);
}

TEST_F(HttpActionTest, WithoutIdsNoCorrelationOrTraceHeadersAreSent) {
  server_.Respond("/plain", 200, "{}");
  ActionResult r = Get("/plain");
  ASSERT_TRUE(r.ok) << r.error.message;
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].header("X-Correlation-ID"), "");
  EXPECT_EQ(server_.requests()[0].header("traceparent"), "");
}

TEST_F(HttpActionTest, ConnectionRefusedFailsWithConnection) {
  // Bound but not listening: connecting to it is refused, and no other test
  // can take the port meanwhile.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ActionResult r =
      Run({{"url",
            "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/"}});
  close(fd);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "connection");
  EXPECT_FALSE(r.error.message.empty());
}

TEST_F(HttpActionTest, SlowResponseFailsWithTimeout) {
  server_.Respond("/slow", 200, "{}", 60000);  // cut short at teardown
  const auto start = SteadyClock::now();
  ActionResult r = Run({{"url", server_.url("/slow")}, {"timeout_ms", 200}});
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(30));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "timeout");
}

TEST_F(HttpActionTest, OversizedResponseFails) {
  server_.Respond("/huge", 200, std::string(2 << 20, 'x'));
  ActionResult r = Get("/huge");
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "response_too_large");
}

TEST_F(HttpActionTest, ResponseNestedTooDeepIsKeptAsText) {
  // Valid JSON 100,000 levels deep from a hostile endpoint: held as a value,
  // it would overflow the stack of whatever copies or logs it.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  server_.Respond("/deep", 200, deep);
  ActionResult r = Get("/deep");
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"status", 200}, {"body", deep}}));
}

TEST_F(HttpActionTest, BadParamsAtRunTimeFailWithParams) {
  for (const json& params :
       {json::object(), json({{"url", 5}}), json({{"url", "ftp://x/"}}),
        json({{"url", server_.url("/")}, {"method", "TRACE"}}),
        json({{"url", server_.url("/")}, {"headers", {{"X", 1}}}}),
        json({{"url", server_.url("/")}, {"headers", {{"X", "a\r\nY: b"}}}}),
        json({{"url", server_.url("/")}, {"timeout_ms", "soon"}})}) {
    ActionResult r = Run(params);
    EXPECT_FALSE(r.ok) << params;
    EXPECT_EQ(r.error.kind, "params") << params;
  }
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(HttpActionTest, AbortDuringASlowResponseSuppressesDone) {
  server_.Respond("/slow", 200, "{}", 60000);  // cut short at teardown
  bool called = false;
  const uint64_t handle =
      action_->Start(Request({{"url", server_.url("/slow")}}),
                     [&](ActionResult) { called = true; });
  // On the wire: the server has it.
  ASSERT_TRUE(RunUntil([&] { return server_.request_count() == 1; }));
  ASSERT_EQ(action_->in_flight(), 1u);

  // The bound only tells "aborted" from "waited for the response".
  const auto start = SteadyClock::now();
  action_->Abort(handle);
  EXPECT_EQ(action_->in_flight(), 0u);
  uv_run(&loop_, UV_RUN_DEFAULT);  // nothing left to wait for
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(30));
  EXPECT_FALSE(called);
  action_->Abort(handle);  // finished handles are ignored
}

TEST_F(HttpActionTest, CloseAbortsWhatIsInFlight) {
  server_.Respond("/slow", 200, "{}", 60000);  // cut short at teardown
  int called = 0;
  for (int i = 0; i < 5; ++i) {
    action_->Start(Request({{"url", server_.url("/slow")}}),
                   [&](ActionResult) { ++called; });
  }
  ASSERT_TRUE(RunUntil([&] { return server_.request_count() == 5; }));
  EXPECT_EQ(action_->in_flight(), 5u);
  const auto start = SteadyClock::now();
  CloseAndDrain();  // must not wait for the server
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(called, 0);
}

TEST_F(HttpActionTest, FiftyConcurrentRequestsAllComplete) {
  constexpr int kRequests = 50;
  server_.Respond("/n", 200, R"({"ok": true})", 1000);
  std::vector<std::optional<ActionResult>> results(kRequests);
  const auto start = SteadyClock::now();
  for (int i = 0; i < kRequests; ++i) {
    action_->Start(
        Request({{"method", "POST"}, {"url", server_.url("/n")}, {"body", i}}),
        [&results, i](ActionResult r) { results[i] = std::move(r); });
  }
  EXPECT_EQ(action_->in_flight(), size_t{kRequests});
  while (action_->in_flight() > 0 && uv_run(&loop_, UV_RUN_ONCE) != 0) {
  }
  // In parallel: far less than 50 x 1 s.
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(25));
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    ASSERT_TRUE(results[i]->ok) << results[i]->error.message;
    EXPECT_EQ(results[i]->output, json({{"ok", true}}));
  }
  std::vector<int> bodies;
  for (const auto& req : server_.requests())
    bodies.push_back(std::stoi(req.body));
  std::sort(bodies.begin(), bodies.end());
  ASSERT_EQ(bodies.size(), size_t{kRequests});
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(bodies[i], i);
}

}  // namespace
}  // namespace cde
