// Inbound rate limits and trace headers over HTTP: McpHttp driven directly
// (requests built by hand, over a real engine on a memory store). The real
// server's wiring and the admin endpoints' 429 are in server_reload_test.cc.
#include <gmock/gmock.h>
#include <strings.h>

#include <optional>

#include "api/jsonrpc.h"
#include "api/mcp_http.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;

using test::kTraceId;
using test::kTraceparent;

json Rpc(int id, const std::string& method, json params = json::object()) {
  return {
      {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
}

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
  }
  return "";
}

class McpHttpLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(h_.Open("")); }
  void TearDown() override {
    if (!mcp_) return;
    bool closed = false;
    mcp_->Close([&] { closed = true; });
    h_.RunUntil([&] { return closed; });
  }

  // The transport, with bearer `tokens` (none: sessions are not
  // authenticated) and limiter_ at one request per ~1000 s, burst `burst`.
  void Open(std::set<std::string> tokens, uint32_t burst,
            size_t max_sessions = 10000, size_t per_token = 1000) {
    limiter_.SetPolicies({.rate_per_sec = 0.001, .burst = burst}, {});
    McpHttpOptions o;
    std::vector<TokenConfig> configs;
    for (const std::string& t : tokens) {
      configs.push_back({"token-" + t, Sha256Hex(t), ScopeSet::All()});
    }
    o.tokens = TokenTable(std::move(configs));
    o.limiter = &limiter_;
    o.max_sessions = max_sessions;
    o.max_sessions_per_client = per_token;
    mcp_ = std::make_unique<McpHttp>(h_.loop(), &h_.engine(), std::move(o));
  }

  // POSTs `body` to /mcp and runs the loop until it is answered.
  HttpResponse Post(const json& body, const std::string& token,
                    const std::string& sid,
                    std::map<std::string, std::string> headers = {}) {
    HttpRequest req;
    req.method = "POST";
    req.target = req.path = "/mcp";
    req.headers = std::move(headers);
    req.headers["accept"] = "application/json, text/event-stream";
    req.headers["content-type"] = "application/json";
    if (!token.empty()) req.headers["authorization"] = "Bearer " + token;
    if (!sid.empty()) req.headers["mcp-session-id"] = sid;
    req.body = body.dump();
    std::optional<HttpResponse> got;
    mcp_->Handle(req, [&](HttpResponse r) { got = std::move(r); });
    h_.RunUntil([&] { return got.has_value(); });
    EXPECT_TRUE(got.has_value());
    return got.value_or(HttpResponse{});
  }
  json PostJson(const json& body, const std::string& token,
                const std::string& sid,
                std::map<std::string, std::string> headers = {}) {
    HttpResponse r = Post(body, token, sid, std::move(headers));
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  // A new initialized session; returns its id.
  std::string Session(const std::string& token) {
    HttpResponse r =
        Post(Rpc(next_id_++, "initialize",
                 {{"protocolVersion", "2025-11-25"},
                  {"capabilities", json::object()},
                  {"clientInfo", {{"name", "t"}, {"version", "1"}}}}),
             token, "");
    EXPECT_EQ(r.status, 200) << r.body;
    const std::string sid = HeaderOf(r, "Mcp-Session-Id");
    EXPECT_FALSE(sid.empty());
    Post(json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}},
         token, sid);
    return sid;
  }
  // tools/list in session `sid`: true if answered, false if rate limited.
  bool List(const std::string& token, const std::string& sid) {
    json r = PostJson(Rpc(next_id_++, "tools/list"), token, sid);
    if (r.contains("result")) return true;
    EXPECT_EQ(r["error"]["code"], kRateLimited) << r.dump();
    EXPECT_GT(r["error"]["data"]["retry_after_ms"].get<int64_t>(), 0);
    return false;
  }

  RateLimiters limiter_;
  test::EngineHarness h_;
  std::unique_ptr<McpHttp> mcp_;
  int next_id_ = 1;
};

TEST_F(McpHttpLimitsTest, SessionsOfOneBearerTokenShareABucket) {
  Open({"alpha", "beta"}, 2);
  const std::string a1 = Session("alpha");
  const std::string a2 = Session("alpha");
  const std::string b = Session("beta");
  EXPECT_TRUE(List("alpha", a1));
  EXPECT_TRUE(List("alpha", a2));
  EXPECT_FALSE(List("alpha", a1));  // the token's two are spent
  EXPECT_FALSE(List("alpha", a2));
  EXPECT_TRUE(List("beta", b));  // another token, another bucket
  EXPECT_TRUE(List("beta", b));
  EXPECT_FALSE(List("beta", b));
}

TEST_F(McpHttpLimitsTest, WithoutTokensEachSessionHasItsOwnBucket) {
  Open({}, 1);
  const std::string s1 = Session("");
  const std::string s2 = Session("");
  EXPECT_TRUE(List("", s1));
  EXPECT_FALSE(List("", s1));
  EXPECT_TRUE(List("", s2));
  // A bearer token nobody configured does not buy a fresh bucket.
  EXPECT_FALSE(List("made-up", s1));
}

TEST_F(McpHttpLimitsTest, ALimitedRequestIsAJsonRpcErrorAndNotifications202) {
  Open({}, 1);
  const std::string sid = Session("");
  EXPECT_TRUE(List("", sid));
  json r = PostJson(Rpc(next_id_++, "tools/list"), "", sid);
  EXPECT_EQ(r["error"]["code"], kRateLimited);
  EXPECT_THAT(r["error"]["message"].get<std::string>(),
              ::testing::StartsWith("rate limit exceeded: retry in "));
  HttpResponse note =
      Post(json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}},
           "", sid);
  EXPECT_EQ(note.status, 202);
  EXPECT_EQ(PostJson(Rpc(next_id_++, "ping"), "", sid)["result"],
            json::object());
}

TEST_F(McpHttpLimitsTest, CorrelationAndTraceHeadersReachStartWorkflow) {
  Open({}, 100);
  const std::string sid = Session("");
  json reg =
      PostJson(Rpc(next_id_++, "tools/call",
                   {{"name", "register_workflow"},
                    {"arguments",
                     {{"definition",
                       {{"name", "one"},
                        {"version", 1},
                        {"steps", {{{"name", "a"}, {"action", "noop"}}}}}}}}}),
               "", sid);
  ASSERT_EQ(reg["result"]["isError"], false) << reg.dump();
  auto start = [&](json meta) {
    json params = {{"name", "start_workflow"},
                   {"arguments", {{"workflow", "one"}}}};
    if (!meta.is_null()) params["_meta"] = meta;
    json r = PostJson(
        Rpc(next_id_++, "tools/call", params), "", sid,
        {{"x-correlation-id", "hdr-7"}, {"traceparent", kTraceparent}});
    const auto id =
        r["result"]["structuredContent"]["saga_id"].get<std::string>();
    json saga =
        PostJson(Rpc(next_id_++, "tools/call",
                     {{"name", "get_saga"}, {"arguments", {{"saga_id", id}}}}),
                 "", sid);
    return saga["result"]["structuredContent"];
  };
  json saga = start(nullptr);
  EXPECT_EQ(saga["correlation_id"], "hdr-7");
  EXPECT_EQ(saga["trace_id"], kTraceId);
  saga = start({{"correlation_id", "meta-7"}});
  EXPECT_EQ(saga["correlation_id"], "meta-7");  // _meta wins
  EXPECT_EQ(saga["trace_id"], kTraceId);        // the header's still
}

// ---- The session table ----------------------------------------------------

TEST_F(McpHttpLimitsTest,
       AtTheCapTheSessionIdleLongestIsEvictedNotTheNewcomer) {
  Open({}, 1000, /*max_sessions=*/3);
  const std::string s1 = Session("");
  const std::string s2 = Session("");
  const std::string s3 = Session("");
  EXPECT_TRUE(List("", s1));  // s2 is now the one idle longest
  const std::string s4 = Session("");
  EXPECT_EQ(mcp_->session_count(), 3u);
  EXPECT_EQ(Post(Rpc(next_id_++, "tools/list"), "", s2).status, 404);
  for (const std::string& kept : {s1, s3, s4}) EXPECT_TRUE(List("", kept));
}

TEST_F(McpHttpLimitsTest, ASessionWaitingOnASagaIsNotEvicted) {
  Open({}, 1000, /*max_sessions=*/1);
  const std::string busy = Session("");
  ASSERT_EQ(PostJson(Rpc(next_id_++, "tools/call",
                         {{"name", "register_workflow"},
                          {"arguments",
                           {{"definition",
                             {{"name", "nap"},
                              {"version", 1},
                              {"steps",
                               {{{"name", "s"},
                                 {"action", "sleep"},
                                 {"params", {{"duration_ms", 600000}}}}}}}}}}}),
                     "", busy)["result"]["isError"],
            false);
  // A start that waits: its request stays in flight.
  std::optional<HttpResponse> waiting;
  HttpRequest req;
  req.method = "POST";
  req.target = req.path = "/mcp";
  req.headers = {{"accept", "application/json, text/event-stream"},
                 {"content-type", "application/json"},
                 {"mcp-session-id", busy}};
  req.body = Rpc(next_id_++, "tools/call",
                 {{"name", "start_workflow"},
                  {"arguments", {{"workflow", "nap"}, {"wait_ms", 600000}}}})
                 .dump();
  mcp_->Handle(req, [&](HttpResponse r) { waiting = std::move(r); });
  HttpResponse refused =
      Post(Rpc(next_id_++, "initialize",
               {{"protocolVersion", "2025-11-25"},
                {"capabilities", json::object()},
                {"clientInfo", {{"name", "t"}, {"version", "1"}}}}),
           "", "");
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("none of them idle"), std::string::npos)
      << refused.body;
  EXPECT_EQ(mcp_->session_count(), 1u);
  EXPECT_FALSE(waiting.has_value());
  // Closed here: closing answers the waiting call, whose callback holds
  // this test's locals.
  bool closed = false;
  mcp_->Close([&] { closed = true; });
  h_.RunUntil([&] { return closed; });
  mcp_.reset();
  EXPECT_TRUE(waiting.has_value());
}

TEST_F(McpHttpLimitsTest, OneTokenCannotTakeEverySession) {
  Open({"alpha", "beta"}, 1000, /*max_sessions=*/10, /*per_token=*/2);
  const std::string a1 = Session("alpha");
  const std::string a2 = Session("alpha");
  const std::string b1 = Session("beta");
  const std::string a3 = Session("alpha");  // evicts a1, alpha's oldest
  EXPECT_EQ(mcp_->session_count(), 3u);
  EXPECT_EQ(Post(Rpc(next_id_++, "tools/list"), "alpha", a1).status, 404);
  EXPECT_TRUE(List("alpha", a2));
  EXPECT_TRUE(List("alpha", a3));
  EXPECT_TRUE(List("beta", b1));  // another token's session is untouched
}

}  // namespace
}  // namespace cde
