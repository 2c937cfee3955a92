// Inbound rate limits and trace headers over HTTP: McpHttp driven directly
// (requests built by hand, over a real engine on a memory store), then the
// real cde-orchestrator binary for the server's wiring (limits.inbound from
// the environment) and the admin endpoints' 429.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <optional>
#include <thread>

#include "api/jsonrpc.h"
#include "api/mcp_http.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr const char* kTraceparent =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

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
  void Open(std::set<std::string> tokens, uint32_t burst) {
    limiter_.SetPolicies({.rate_per_sec = 0.001, .burst = burst}, {});
    McpHttpOptions o;
    o.bearer_tokens = std::move(tokens);
    o.limiter = &limiter_;
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

// --- the real server ---

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct Reply {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t AppendHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(c));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n") + 1);
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

Reply HttpPost(const std::string& url, const std::string& body,
               const std::vector<std::string>& headers = {}) {
  Reply reply;
  CURL* curl = curl_easy_init();
  curl_slist* list =
      curl_slist_append(nullptr, "Content-Type: application/json");
  list = curl_slist_append(list, "Accept: application/json, text/event-stream");
  for (const std::string& h : headers)
    list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &AppendHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return reply;
}

// cde-orchestrator with limits.inbound at one request per 1000 s, burst 1,
// from the environment.
class ServerInboundLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int port = FreePort();
    base_ = "http://127.0.0.1:" + std::to_string(port);
    pid_ = fork();
    if (pid_ == 0) {
      setenv("CDE_LIMITS_INBOUND_RATE_PER_SEC", "0.001", 1);
      setenv("CDE_LIMITS_INBOUND_BURST", "1", 1);
      const std::string listen = "127.0.0.1:" + std::to_string(port);
      const std::string data = dir_.Sub("data");
      execl(CDE_ORCHESTRATOR_PATH, CDE_ORCHESTRATOR_PATH, "serve", "--data-dir",
            data.c_str(), "--http", listen.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 400; ++i) {
      if (HttpPost(base_ + "/health/readiness", "").status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "the server did not become ready";
  }
  void TearDown() override {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  test::TempDir dir_;
  std::string base_;
  pid_t pid_ = -1;
};

TEST_F(ServerInboundLimitTest, AdminPostsOverTheLimitGet429WithRetryAfter) {
  const std::string purge =
      json{{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}.dump();
  Reply first = HttpPost(base_ + "/admin/dlq/purge", purge);
  EXPECT_EQ(first.status, 404) << first.body;  // no such saga: but served
  Reply limited = HttpPost(base_ + "/admin/dlq/purge", purge);
  ASSERT_EQ(limited.status, 429) << limited.body;
  const json body = json::parse(limited.body, nullptr, false);
  const int64_t wait = body.value("retry_after_ms", int64_t{0});
  EXPECT_GT(wait, 990000);  // a token per 1000 s
  EXPECT_EQ(body["error"],
            "rate limit exceeded: retry in " + std::to_string(wait) + " ms");
  EXPECT_EQ(limited.headers["retry-after"],
            std::to_string((wait + 999) / 1000));
  // The backup endpoint draws on the same "admin" bucket.
  EXPECT_EQ(HttpPost(base_ + "/admin/backup",
                     json{{"dir", dir_.Sub("backup")}}.dump())
                .status,
            429);
}

TEST_F(ServerInboundLimitTest, McpRequestsOverTheLimitGetMinus32029) {
  Reply init = HttpPost(base_ + "/mcp",
                        Rpc(1, "initialize",
                            {{"protocolVersion", "2025-11-25"},
                             {"capabilities", json::object()},
                             {"clientInfo", {{"name", "t"}, {"version", "1"}}}})
                            .dump());
  ASSERT_EQ(init.status, 200) << init.body;
  const std::string sid = "Mcp-Session-Id: " + init.headers["mcp-session-id"];
  Reply first = HttpPost(base_ + "/mcp", Rpc(2, "tools/list").dump(), {sid});
  EXPECT_TRUE(json::parse(first.body).contains("result")) << first.body;
  Reply second = HttpPost(base_ + "/mcp", Rpc(3, "tools/list").dump(), {sid});
  const json err = json::parse(second.body)["error"];
  EXPECT_EQ(err["code"], kRateLimited) << second.body;
  EXPECT_GT(err["data"]["retry_after_ms"].get<int64_t>(), 990000);
  // ping stays open.
  Reply ping = HttpPost(base_ + "/mcp", Rpc(4, "ping").dump(), {sid});
  EXPECT_EQ(json::parse(ping.body)["result"], json::object()) << ping.body;
}

}  // namespace
}  // namespace cde
