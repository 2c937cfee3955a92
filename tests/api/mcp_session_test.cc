// An MCP session over a real engine (memory store, real loop): lifecycle,
// version negotiation, tools/list, and tool calls with their results and
// errors as a client sees them on the wire; start_workflow's wait with its
// progress notifications, timeouts and cancellation; logging; completion.
#include "api/mcp_session.h"

#include <gmock/gmock.h>

#include <chrono>

#include "api/jsonrpc.h"
#include "api/mcp_util.h"
#include "storage/keys.h"
#include "storage/transition.h"
#include "tests/engine/engine_harness.h"
#include "tests/engine/saga_generator.h"

namespace cde {
namespace {

using nlohmann::json;

class McpSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(h_.Open("", {{"held", held_.AsAction()}}));
    session_ = McpSession::Create(&h_.engine(), h_.loop(), Recorder());
  }

  // Keeps what the session sends. A transport routes frames by what the
  // session says they are, so that must match what they hold.
  McpSession::Send Recorder() {
    return [this](McpSession::OutFrame frame) {
      json sent = json::parse(frame.text);
      EXPECT_EQ(frame.is_response, !sent.contains("method")) << frame.text;
      if (frame.is_response) {
        EXPECT_EQ(frame.related, sent["id"]);
      }
      sent_.push_back(std::move(sent));
      related_.push_back(frame.related);
    };
  }

  // Sends a request and runs the loop until its reply arrives.
  json Call(const std::string& method, json params = json::object()) {
    const int id = next_id_++;
    session_->OnFrame(json{
        {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}
                          .dump());
    json reply;
    h_.RunUntil([&] {
      for (const json& m : sent_) {
        if (m.value("id", json()) == id) {
          reply = m;
          return true;
        }
      }
      return false;
    });
    return reply;
  }
  json Tool(const std::string& name, json args) {
    return Call("tools/call", {{"name", name}, {"arguments", args}});
  }
  void Initialize() {
    Call("initialize", {{"protocolVersion", "2025-06-18"},
                        {"capabilities", json::object()},
                        {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    session_->OnFrame(
        R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }

  // Sends a request without waiting for its reply; returns its id.
  int Send(const std::string& method, json params) {
    const int id = next_id_++;
    session_->OnFrame(json{
        {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}
                          .dump());
    return id;
  }
  // The reply to request `id` among the frames sent so far, or null.
  json ReplyTo(int id) const {
    for (const json& m : sent_) {
      if (m.value("id", json()) == id && !m.contains("method")) return m;
    }
    return nullptr;
  }
  size_t RepliesTo(int id) const {
    size_t n = 0;
    for (const json& m : sent_) {
      n += m.value("id", json()) == id && !m.contains("method");
    }
    return n;
  }
  // The notifications `method` sent so far, in order.
  std::vector<json> Notes(const std::string& method) const {
    std::vector<json> out;
    for (const json& m : sent_) {
      if (m.value("method", "") == method) out.push_back(m["params"]);
    }
    return out;
  }
  // Runs the loop for `ms` (for things that must not happen).
  void RunFor(int ms) {
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    h_.RunUntil([&] { return std::chrono::steady_clock::now() >= end; });
  }
  void Register(const json& definition) {
    json r = Tool("register_workflow", {{"definition", definition}});
    ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  }
  std::string StartId(json args) {
    json r = Tool("start_workflow", std::move(args));
    EXPECT_EQ(r["result"]["isError"], false) << r.dump();
    return r["result"]["structuredContent"].value("saga_id", "");
  }
  static json Out(const json& reply) {
    return reply["result"]["structuredContent"];
  }
  static std::string ErrorMessage(const json& reply) {
    EXPECT_EQ(reply["result"]["isError"], true) << reply.dump();
    return reply["result"]["structuredContent"]["error"].value("message", "");
  }

  // Replaces the session with one whose requests `limiter_` limits under
  // policy `p` (key "session:test").
  void Limit(RatePolicy p) {
    limiter_.SetPolicies(p, {});
    session_->Close();
    session_ = McpSession::Create(
        &h_.engine(), h_.loop(), Recorder(),
        McpSessionOptions{.limiter = &limiter_, .rate_key = "session:test"});
  }
  // Sends tools/call with `params` (name, arguments, _meta...) in a frame
  // that came with `context`, and waits for its reply.
  json CallWith(json params, const McpMessageContext& context = {}) {
    const int id = next_id_++;
    session_->OnFrame(json{{"jsonrpc", "2.0"},
                           {"id", id},
                           {"method", "tools/call"},
                           {"params", params}}
                          .dump(),
                      context);
    h_.RunUntil([&] { return ReplyTo(id) != nullptr; });
    return ReplyTo(id);
  }
  // The saga `id` as get_saga shows it.
  json GetSaga(const std::string& id) {
    return Out(Tool("get_saga", {{"saga_id", id}}));
  }
  size_t StoredSagas() {
    auto page = h_.engine().store().ListSagas(SagaQuery{});
    EXPECT_TRUE(page.ok());
    return page.ok() ? page->sagas.size() : 0;
  }

  RateLimiters limiter_;
  test::HeldAction held_;
  test::EngineHarness h_;
  std::shared_ptr<McpSession> session_;
  std::vector<json> sent_;
  std::vector<json> related_;  // the `related` id of each frame in sent_
  int next_id_ = 1;
};

// Three quick steps: echo, a short sleep, echo.
const json kThreeSteps = {
    {"name", "three"},
    {"version", 1},
    {"steps",
     {{{"name", "a"}, {"action", "echo"}, {"params", {{"n", 1}}}},
      {{"name", "b"}, {"action", "sleep"}, {"params", {{"duration_ms", 5}}}},
      {{"name", "c"}, {"action", "echo"}, {"params", {{"n", 3}}}}}}};

// One step whose attempts the test completes by hand (held_).
const json kHeld = {{"name", "held"},
                    {"version", 1},
                    {"steps", {{{"name", "wait"}, {"action", "held"}}}}};

// A step that always fails, once: the saga is parked.
const json kParks = {{"name", "parks"},
                     {"version", 1},
                     {"on_failure", "park"},
                     {"steps",
                      {{{"name", "boom"},
                        {"action", "fail"},
                        {"params", {{"error", "no luck"}, {"kind", "bad"}}},
                        {"retry", {{"max_attempts", 1}}}}}}};

TEST_F(McpSessionTest, InitializeNegotiatesTheProtocolVersion) {
  json r = Call("initialize", {{"protocolVersion", "2025-06-18"}});
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "cde-orchestrator");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  json newer = Call("initialize", {{"protocolVersion", "2099-01-01"}});
  EXPECT_EQ(newer["result"]["protocolVersion"], "2025-11-25");
}

// Found by fuzz_mcp_session: a protocolVersion that is not a string once
// ended the server.
TEST_F(McpSessionTest, InitializeWithAProtocolVersionThatIsNoStringIsRefused) {
  for (const json& version : {json::object(), json(2025), json::array()}) {
    json r = Call("initialize", {{"protocolVersion", version}});
    EXPECT_EQ(r["error"]["code"], jsonrpc::kInvalidParams) << r;
    EXPECT_THAT(
        r["error"]["message"].get<std::string>(),
        ::testing::HasSubstr("params.protocolVersion: must be a string"));
  }
  // Nothing was negotiated: the session still waits for initialize.
  EXPECT_EQ(Call("tools/list")["error"]["code"], jsonrpc::kInvalidRequest);
  EXPECT_EQ(Call("initialize", {{"protocolVersion",
                                 "2025-06-18"}})["result"]["protocolVersion"],
            "2025-06-18");
}

TEST_F(McpSessionTest, RequestsBeforeInitializeAreRefusedButPingWorks) {
  EXPECT_EQ(Call("ping")["result"], json::object());
  EXPECT_EQ(Call("tools/list")["error"]["code"], jsonrpc::kInvalidRequest);
}

// A tool's result is encoded with its saga serialized once; the bytes are
// those of the envelope built whole.
TEST(EncodeToolResultTest, SameBytesAsTheEnvelopeBuiltWhole) {
  const json structured = {{"saga",
                            {{"input",
                              {{"q", "a \"quoted\" \\ back\\slash"},
                               {"ctl", std::string("tab\tnl\ncr\r\x01")},
                               {"utf8", "\u00e9t\u00e9 \u2028 \U0001F600"}}},
                             {"steps", json::array({1, 2.5, nullptr, true})}}},
                           {"state", "completed"}};
  for (const json& id : {json(7), json("req-\"1\"")}) {
    const json whole = {
        {"content", {{{"type", "text"}, {"text", structured.dump()}}}},
        {"structuredContent", structured},
        {"isError", false}};
    EXPECT_EQ(mcp::EncodeToolResult(id, structured),
              jsonrpc::EncodeResult(id, whole));
  }
}

// The answer to a start_workflow that waits is written from the saga in
// memory: the same bytes as the view built from its record, whichever
// fields are set, with the definition it ran, one of another shape, or none,
// and with strings that need escaping.
// The view built from the stored record's JSON, as SagaJson made it before
// every surface read the typed saga: the oracle for SagaJsonText. `next`
// is not rebuilt here: it is taken from the text under test.
json ViewOfTheRecord(SagaRecord r, const WorkflowDefinition* def,
                     const json& next) {
  if (auto steps = r.body.find("steps"); steps != r.body.end()) {
    // Named by the definition only if it is the one the saga ran (as many
    // steps); by index otherwise.
    const bool named = def != nullptr && def->steps.size() == steps->size();
    for (size_t i = 0; i < steps->size(); ++i) {
      if (named) (*steps)[i]["name"] = def->steps[i].name;
      (*steps)[i]["path"] =
          named ? def->steps[i].name : "step[" + std::to_string(i) + "]";
    }
  }
  json out = {{"saga_id", r.id},
              {"workflow", r.workflow},
              {"version", r.version},
              {"state", SagaStateName(r.state)},
              {"created_ms", r.created_ms},
              {"updated_ms", r.updated_ms},
              {"last_seq", r.last_seq}};
  for (const char* key :
       {"input", "steps", "failure", "correlation_id", "trace_id", "started_by",
        "cancelled_by", "replayed_by"}) {
    if (auto it = r.body.find(key); it != r.body.end()) out[key] = *it;
  }
  if (auto it = r.body.find("waits"); it != r.body.end()) {
    json shown = json::array();
    for (const json& w : *it) {
      json one = {{"kind", w["kind"]}};
      if (w.value("attempt", 0) != 0) one["attempt"] = w["attempt"];
      if (w.value("due_ms", int64_t{0}) != 0) one["due_ms"] = w["due_ms"];
      if (!w.value("path", std::string()).empty()) {
        one["compensation"] = w.value("compensation", false);
        one["path"] = w["path"];
      }
      shown.push_back(std::move(one));
    }
    out["waits"] = std::move(shown);
  }
  if (!r.idempotency_key.empty()) out["idempotency_key"] = r.idempotency_key;
  out["next"] = next;
  return out;
}

TEST(SagaJsonTextTest, SameBytesAsTheViewOfTheRecord) {
  auto expect_same = [](const Saga& s, const std::string& what) {
    SCOPED_TRACE(what);
    WorkflowDefinition named, fewer;
    for (size_t i = 0; i < s.steps.size(); ++i) {
      named.steps.push_back({});
      named.steps.back().name = "step-" + std::to_string(i);
      named.steps.back().path = named.steps.back().name;
    }
    fewer.steps.assign(named.steps.begin(),
                       named.steps.begin() + named.steps.size() / 2);
    const std::vector<const WorkflowDefinition*> defs = {&named, &fewer,
                                                         nullptr};
    for (const WorkflowDefinition* def : defs) {
      const std::string text = mcp::SagaJsonText(s, def);
      const json parsed = json::parse(text);
      EXPECT_EQ(text, ViewOfTheRecord(ToRecord(s), def, parsed["next"]).dump());
      EXPECT_EQ(mcp::SagaJson(ToRecord(s), def), parsed);
    }
  };
  Saga every = test::SagaWithEveryField();
  expect_same(every, "every field");
  every.correlation_id = "a \"quoted\" \\ id\twith\x01 controls";
  every.failure.message = "caf\u00e9 \u2028 \U0001F600";
  every.steps[0].output = {{"q", "\"x\""}};
  expect_same(every, "strings to escape");
  for (SagaState state :
       {SagaState::kParked, SagaState::kCompensated, SagaState::kCompleted,
        SagaState::kCancelled, SagaState::kRunning}) {
    every.state = state;
    expect_same(every, "state " + std::string(SagaStateName(state)));
  }
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    expect_same(test::GeneratedSaga(seed), "seed " + std::to_string(seed));
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(SagaJsonTextTest, NextNamesTheFailedStepAndTheToolThatRunsItAgain) {
  Saga s = test::SagaWithEveryField();
  s.state = SagaState::kParked;
  WorkflowDefinition def;
  for (size_t i = 0; i < s.steps.size(); ++i) {
    def.steps.push_back({});
    def.steps.back().name = "step-" + std::to_string(i);
    def.steps.back().path = def.steps.back().name;
  }
  const json view = mcp::SagaJson(ToRecord(s), &def);
  const std::string next = view["next"].get<std::string>();
  EXPECT_NE(
      next.find("step 'step-" + std::to_string(s.failed_step) +
                "' failed with " + s.failure.kind + ": " + s.failure.message),
      std::string::npos)
      << next;
  EXPECT_NE(next.find("replay_saga"), std::string::npos) << next;
}

// A snapshot the engine cannot read shows its head and why, not a crash.
TEST(SagaJsonTextTest, AParallelStepShowsItsBranchesAsATree) {
  auto def = ParseDefinition(json::parse(R"({
    "name": "trip", "version": 1,
    "steps": [
      {"name": "book", "parallel": {"branches": {
        "flight": [{"name": "flight", "action": "noop"}],
        "hotel": [{"name": "hotel", "action": "noop"}]}}},
      {"name": "notify", "action": "noop"}]})"),
                             {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  Saga s;
  s.id = "01JPARALLEL000000000000000";
  s.workflow = "trip";
  s.version = 1;
  s.steps.resize(def->steps.size());
  s.steps[0].status = StepStatus::kRunning;
  s.steps[1].status = StepStatus::kSucceeded;
  s.steps[1].output = {{"pnr", "F1"}};
  s.steps[2].status = StepStatus::kRunning;
  s.steps[2].attempts = 1;
  s.waits.push_back({Wait::Kind::kAttempt, "book.hotel.hotel", false, 1, 0});
  const json view = json::parse(mcp::SagaJsonText(s, &*def));
  ASSERT_EQ(view["steps"].size(), 2u);  // the top level: book, notify
  const json& book = view["steps"][0];
  EXPECT_EQ(book["kind"], "parallel");
  EXPECT_EQ(book["path"], "book");
  EXPECT_EQ(book["branches"]["flight"][0]["path"], "book.flight.flight");
  EXPECT_EQ(book["branches"]["flight"][0]["output"], (json{{"pnr", "F1"}}));
  EXPECT_EQ(book["branches"]["hotel"][0]["status"], "running");
  EXPECT_EQ(view["steps"][1]["path"], "notify");
  EXPECT_FALSE(view["steps"][1].contains("kind"));
  EXPECT_EQ(view["waits"][0]["path"], "book.hotel.hotel");
  // The same bytes as a JSON library writes them (keys in order).
  EXPECT_EQ(view.dump(), mcp::SagaJsonText(s, &*def));
}

TEST(SagaJsonTextTest, AnUndecodableSnapshotShowsItsHeadAndTheError) {
  SagaRecord r = ToRecord(test::SagaWithEveryField());
  r.body["steps"][0]["status"] = "exploded";
  const json view = mcp::SagaJson(r, nullptr);
  EXPECT_EQ(view["saga_id"], r.id);
  EXPECT_EQ(view["state"], SagaStateName(r.state));
  EXPECT_NE(view["error"].get<std::string>().find("exploded"),
            std::string::npos)
      << view.dump();
  EXPECT_FALSE(view.contains("steps"));
}

TEST_F(McpSessionTest, ToolsListDescribesEveryToolWithSchemas) {
  Initialize();
  json tools = Call("tools/list")["result"]["tools"];
  std::vector<std::string> names;
  for (const json& t : tools) {
    names.push_back(t["name"].get<std::string>());
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t["name"];
    EXPECT_EQ(t["outputSchema"]["type"], "object") << t["name"];
    EXPECT_TRUE(t["inputSchema"]["properties"].is_object()) << t["name"];
    EXPECT_TRUE(t["annotations"].contains("readOnlyHint"));
  }
  EXPECT_THAT(names,
              ::testing::IsSupersetOf(
                  {"list_workflows", "register_workflow", "start_workflow",
                   "get_saga", "cancel_saga", "replay_saga", "engine_stats"}));
}

// An agent sees only tools: register_workflow's schema is the language.
TEST_F(McpSessionTest, RegisterWorkflowTakesTheDefinitionLanguageAsItsSchema) {
  Initialize();
  json register_tool;
  const json tools = Call("tools/list")["result"]["tools"];
  for (const json& t : tools) {
    if (t["name"] == "register_workflow") register_tool = t;
  }
  const json& definition =
      register_tool["inputSchema"]["properties"]["definition"];
  EXPECT_EQ(definition, h_.engine().DefinitionSchema());
  EXPECT_EQ(definition["required"], json({"name", "version", "steps"}));
  const json& action =
      definition["properties"]["steps"]["items"]["properties"]["action"];
  EXPECT_THAT(action["enum"].get<std::vector<std::string>>(),
              ::testing::IsSupersetOf({"noop", "echo", "http", "exec"}));
}

// An agent sees only tools: list_workflows must teach it the input.
TEST_F(McpSessionTest, ListWorkflowsShowsTheInputSchemaAndAnExampleInput) {
  Initialize();
  const json schema = {{"type", "object"},
                       {"required", {"qty", "sku"}},
                       {"properties",
                        {{"qty", {{"type", "integer"}, {"minimum", 1}}},
                         {"sku", {{"type", "string"}, {"minLength", 3}}}}}};
  json with_examples = {{"name", "order"},
                        {"version", 1},
                        {"input_schema", schema},
                        {"examples", {{{"qty", 2}, {"sku", "A-42"}}}},
                        {"steps", {{{"name", "a"}, {"action", "noop"}}}}};
  Register(with_examples);
  json generated = with_examples;
  generated["name"] = "order-generated";
  generated.erase("examples");
  Register(generated);
  const json list = Out(Tool("list_workflows", json::object()))["workflows"];
  ASSERT_EQ(list.size(), 2u) << list.dump();
  for (const json& w : list) {
    EXPECT_EQ(w["input_schema"], schema) << w.dump();
    const json example = w["example_input"];
    ASSERT_TRUE(example.is_object()) << w.dump();
    // What it shows, start_workflow accepts.
    json started = Out(Tool(
        "start_workflow",
        {{"workflow", w["name"]}, {"input", example}, {"wait_ms", 10000}}));
    EXPECT_EQ(started["state"], "completed") << started.dump();
  }
  EXPECT_EQ(list[0]["example_input"], json({{"qty", 2}, {"sku", "A-42"}}));
  EXPECT_EQ(list[1]["example_input"], json({{"qty", 1}, {"sku", "xxx"}}));
}

TEST_F(McpSessionTest, AnnotationsTellWhichToolsReachOutside) {
  Initialize();
  std::map<std::string, json> hints;
  const json listed = Call("tools/list")["result"]["tools"];
  for (const json& t : listed) {
    hints[t["name"].get<std::string>()] = t["annotations"];
  }
  // A start runs steps that call services and programs, and starts another
  // saga each time unless given an idempotency key.
  EXPECT_EQ(hints["start_workflow"]["openWorldHint"], true);
  EXPECT_EQ(hints["start_workflow"]["idempotentHint"], false);
  EXPECT_EQ(hints["start_workflow"]["readOnlyHint"], false);
  EXPECT_EQ(hints["cancel_saga"]["destructiveHint"], true);
  EXPECT_EQ(hints["cancel_saga"]["openWorldHint"], true);
  EXPECT_EQ(hints["replay_saga"]["openWorldHint"], true);
  for (const char* read : {"list_workflows", "get_saga", "list_sagas",
                           "get_saga_log", "list_dlq", "engine_stats"}) {
    EXPECT_EQ(hints[read]["readOnlyHint"], true) << read;
    EXPECT_EQ(hints[read]["openWorldHint"], false) << read;
  }
}

// A client that shows its model tools only: each workflow is a tool, and
// a new one is announced.
TEST_F(McpSessionTest, EachWorkflowIsAToolOfItsOwnAndNewOnesAreAnnounced) {
  json init =
      Call("initialize", {{"protocolVersion", "2025-06-18"},
                          {"capabilities", json::object()},
                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  EXPECT_EQ(init["result"]["capabilities"]["tools"]["listChanged"], true);
  Register(kThreeSteps);
  EXPECT_EQ(Notes("notifications/tools/list_changed").size(), 1u);
  // The same content again changes nothing, and announces nothing.
  Register(kThreeSteps);
  EXPECT_EQ(Notes("notifications/tools/list_changed").size(), 1u);
  json schema = {{"type", "object"},
                 {"required", {"n"}},
                 {"properties", {{"n", {{"type", "integer"}}}}}};
  Register({{"name", "typed"},
            {"version", 1},
            {"description", "Echoes n."},
            {"input_schema", schema},
            {"steps",
             {{{"name", "say"},
               {"action", "echo"},
               {"params", {{"n", "${input.n}"}}}}}}});
  EXPECT_EQ(Notes("notifications/tools/list_changed").size(), 2u);
  std::map<std::string, json> tools;
  const json listed = Call("tools/list")["result"]["tools"];
  for (const json& t : listed) {
    tools[t["name"].get<std::string>()] = t;
  }
  ASSERT_EQ(tools.count("run_three"), 1u);
  ASSERT_EQ(tools.count("run_typed"), 1u);
  EXPECT_EQ(tools["run_typed"]["inputSchema"], schema);
  EXPECT_THAT(tools["run_typed"]["description"].get<std::string>(),
              ::testing::StartsWith("Echoes n.\n\nRuns the workflow 'typed'"));
  EXPECT_EQ(tools["run_three"]["inputSchema"]["type"], "object");
  EXPECT_EQ(tools["run_typed"]["annotations"]["openWorldHint"], true);
  // Its arguments are the input; its result is start_workflow's with a wait.
  json done = Out(Tool("run_typed", {{"n", 7}}));
  EXPECT_EQ(done["state"], "completed") << done.dump();
  EXPECT_EQ(done["saga"]["steps"][0]["output"], json({{"n", 7}}));
  EXPECT_EQ(done["saga"]["started_by"], "local");
  // Bad input is refused as start_workflow refuses it.
  EXPECT_THAT(ErrorMessage(Tool("run_typed", {{"n", "seven"}})),
              ::testing::HasSubstr("input.n: must be"));
  // An idempotency key rides in _meta.
  json first = CallWith({{"name", "run_three"},
                         {"arguments", json::object()},
                         {"_meta", {{"idempotency_key", "once"}}}});
  json again = CallWith({{"name", "run_three"},
                         {"arguments", json::object()},
                         {"_meta", {{"idempotency_key", "once"}}}});
  EXPECT_EQ(Out(again)["saga_id"], Out(first)["saga_id"]);
  EXPECT_EQ(Out(again)["created"], false);
  EXPECT_EQ(Tool("run_nothing", json::object())["error"]["code"],
            jsonrpc::kInvalidParams);
}

TEST_F(McpSessionTest, WorkflowToolsCanBeTurnedOff) {
  session_->Close();
  session_ = McpSession::Create(&h_.engine(), h_.loop(), Recorder(),
                                McpSessionOptions{.workflow_tools = false});
  json init =
      Call("initialize", {{"protocolVersion", "2025-06-18"},
                          {"capabilities", json::object()},
                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  EXPECT_EQ(init["result"]["capabilities"]["tools"]["listChanged"], false);
  Register(kThreeSteps);
  EXPECT_TRUE(Notes("notifications/tools/list_changed").empty());
  const json listed = Call("tools/list")["result"]["tools"];
  for (const json& t : listed) {
    EXPECT_FALSE(t["name"].get<std::string>().starts_with("run_"));
  }
  EXPECT_EQ(Tool("run_three", json::object())["error"]["code"],
            jsonrpc::kInvalidParams);
}

TEST(WorkflowToolNameTest, LongNamesAreCutWithAHashSoTheyStayApart) {
  EXPECT_EQ(WorkflowToolName("trip-booking"), "run_trip-booking");
  const std::string a = std::string(127, 'a') + "1";
  const std::string b = std::string(127, 'a') + "2";
  EXPECT_EQ(WorkflowToolName(std::string(124, 'a')).size(), 128u);
  EXPECT_EQ(WorkflowToolName(a).size(), 128u);
  EXPECT_NE(WorkflowToolName(a), WorkflowToolName(b));
  EXPECT_TRUE(WorkflowToolName(a).starts_with("run_aaa"));
}

TEST_F(McpSessionTest, RegisterStartAndFollowASaga) {
  Initialize();
  json reg = Tool("register_workflow",
                  {{"definition",
                    {{"name", "hello"},
                     {"version", 1},
                     {"steps",
                      {{{"name", "greet"},
                        {"action", "echo"},
                        {"params", {{"who", "${input.who}"}}}}}}}}});
  ASSERT_EQ(reg["result"]["isError"], false) << reg.dump();
  EXPECT_EQ(reg["result"]["structuredContent"],
            json({{"name", "hello"}, {"version", 1}}));

  json started = Tool("start_workflow", {{"workflow", "hello"},
                                         {"input", {{"who", "world"}}},
                                         {"idempotency_key", "k1"}});
  ASSERT_EQ(started["result"]["isError"], false) << started.dump();
  const auto id =
      started["result"]["structuredContent"]["saga_id"].get<std::string>();
  ASSERT_OK(h_.AwaitInactive(id).status());
  json saga = Tool("get_saga", {{"saga_id", id}});
  EXPECT_EQ(saga["result"]["structuredContent"]["state"], "completed");
  EXPECT_EQ(saga["result"]["structuredContent"]["steps"][0]["output"],
            json({{"who", "world"}}));
  json again = Tool("start_workflow",
                    {{"workflow", "hello"}, {"idempotency_key", "k1"}});
  EXPECT_EQ(again["result"]["structuredContent"]["saga_id"], id);
  EXPECT_EQ(again["result"]["structuredContent"]["created"], false);
}

TEST_F(McpSessionTest, ToolFailuresAreIsErrorWithAStableCode) {
  Initialize();
  json bad = Tool("register_workflow",
                  {{"definition", {{"name", "x"}, {"version", 0}}}});
  EXPECT_EQ(bad["result"]["isError"], true);
  EXPECT_EQ(bad["result"]["structuredContent"]["error"]["code"],
            "invalid_argument");
  EXPECT_NE(bad["result"]["structuredContent"]["error"]["message"]
                .get<std::string>()
                .find("version: must be"),
            std::string::npos);
  json missing = Tool("get_saga", {{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}});
  EXPECT_EQ(missing["result"]["structuredContent"]["error"]["code"],
            "not_found");
  json no_arg = Tool("start_workflow", json::object());
  EXPECT_EQ(no_arg["result"]["structuredContent"]["error"]["message"],
            "arguments.workflow: required");
}

TEST_F(McpSessionTest, ProtocolErrorsUseJsonRpcCodes) {
  Initialize();
  EXPECT_EQ(Call("no/such/method")["error"]["code"], jsonrpc::kMethodNotFound);
  EXPECT_EQ(Tool("no_such_tool", json::object())["error"]["code"],
            jsonrpc::kInvalidParams);
  session_->OnFrame("{not json");
  EXPECT_EQ(sent_.back()["error"]["code"], jsonrpc::kParseError);
  EXPECT_TRUE(sent_.back()["id"].is_null());
}

TEST_F(McpSessionTest, ToolsListHasTheListToolsReadOnlyAndRejectsACursor) {
  Initialize();
  json tools = Call("tools/list")["result"]["tools"];
  for (const char* name : {"list_sagas", "get_saga_log", "list_dlq"}) {
    auto it = std::find_if(tools.begin(), tools.end(),
                           [&](const json& t) { return t["name"] == name; });
    ASSERT_NE(it, tools.end()) << name;
    EXPECT_EQ((*it)["annotations"]["readOnlyHint"], true) << name;
    // isError results ({error}) must pass the output schema too.
    EXPECT_FALSE((*it)["outputSchema"].contains("required")) << name;
    EXPECT_TRUE((*it)["outputSchema"]["properties"].contains("error"));
  }
  EXPECT_TRUE(Call("tools/list", {{"cursor", ""}})["result"].contains("tools"));
  json bad = Call("tools/list", {{"cursor", "abc"}});
  EXPECT_EQ(bad["error"]["code"], jsonrpc::kInvalidParams);
  EXPECT_THAT(bad["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("params.cursor"));
}

TEST_F(McpSessionTest, ListSagasPagesNewestFirstWithFilters) {
  Initialize();
  Register(kThreeSteps);
  Register(kHeld);
  std::vector<std::string> done;
  for (int i = 0; i < 3; ++i) {
    done.push_back(StartId({{"workflow", "three"}}));
    ASSERT_OK(h_.AwaitInactive(done.back()).status());
  }
  const std::string running = StartId({{"workflow", "held"}});
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));

  json first = Out(Tool("list_sagas", {{"limit", 2}}));
  ASSERT_EQ(first["sagas"].size(), 2u) << first.dump();
  EXPECT_EQ(first["sagas"][0]["saga_id"], running);
  EXPECT_EQ(first["sagas"][0]["state"], "running");
  EXPECT_EQ(first["sagas"][0]["current_step"], "wait");
  EXPECT_EQ(first["sagas"][0]["workflow"], "held");
  EXPECT_EQ(first["sagas"][0]["version"], 1);
  EXPECT_TRUE(first["sagas"][0].contains("created_ms"));
  EXPECT_TRUE(first["sagas"][0].contains("updated_ms"));
  EXPECT_EQ(first["sagas"][1]["saga_id"], done[2]);
  EXPECT_FALSE(first["sagas"][1].contains("current_step"));
  ASSERT_TRUE(first["next_cursor"].is_string());

  json second =
      Out(Tool("list_sagas", {{"limit", 2}, {"cursor", first["next_cursor"]}}));
  ASSERT_EQ(second["sagas"].size(), 2u);
  EXPECT_EQ(second["sagas"][0]["saga_id"], done[1]);
  EXPECT_EQ(second["sagas"][1]["saga_id"], done[0]);
  EXPECT_FALSE(second.contains("next_cursor")) << second.dump();

  json completed = Out(Tool("list_sagas", {{"state", "completed"}}));
  EXPECT_EQ(completed["sagas"].size(), 3u);
  json held = Out(Tool("list_sagas", {{"workflow", "held"}}));
  ASSERT_EQ(held["sagas"].size(), 1u);
  EXPECT_EQ(held["sagas"][0]["saga_id"], running);
  EXPECT_EQ(Out(Tool("list_sagas",
                     {{"workflow", "held"}, {"state", "completed"}}))["sagas"]
                .size(),
            0u);
  ASSERT_TRUE(held_.Complete(ActionResult::Success(nullptr)));
  ASSERT_OK(h_.AwaitInactive(running).status());
}

// A finished saga whose snapshot no longer decodes (a disk's bit rot, a
// bug) is listed apart, with the error naming its row, and the others are
// listed still: one broken saga does not hide the store from a client.
TEST_F(McpSessionTest, ListSagasNamesASagaThatDoesNotReadAndListsTheOthers) {
  Initialize();
  Register(kThreeSteps);
  std::vector<std::string> done;
  for (int i = 0; i < 3; ++i) {
    done.push_back(StartId({{"workflow", "three"}}));
    ASSERT_OK(h_.AwaitInactive(done.back()).status());
  }
  Transition rot;
  rot.TEST_PutRaw(Cf::kSagas, done[1], std::string("\x01\xff\x00rot", 6));
  const Transition* batch[] = {&rot};
  ASSERT_OK(h_.engine().store().Write(batch, /*sync=*/true));

  for (const json& args : {json::object(), json{{"state", "completed"}},
                           json{{"workflow", "three"}}}) {
    json out = Out(Tool("list_sagas", args));
    ASSERT_EQ(out["sagas"].size(), 2u) << out.dump();
    EXPECT_EQ(out["sagas"][0]["saga_id"], done[2]);
    EXPECT_EQ(out["sagas"][1]["saga_id"], done[0]);
    ASSERT_EQ(out["unreadable"].size(), 1u) << out.dump();
    EXPECT_EQ(out["unreadable"][0]["saga_id"], done[1]);
    EXPECT_NE(out["unreadable"][0]["error"].get<std::string>().find(
                  "cf 'sagas' key '" + done[1] + "'"),
              std::string::npos)
        << out.dump();
  }
}

TEST_F(McpSessionTest, ListSagasRejectsABadStateLimitOrCursor) {
  Initialize();
  std::string msg = ErrorMessage(Tool("list_sagas", {{"state", "failed"}}));
  EXPECT_THAT(msg, ::testing::HasSubstr("arguments.state"));
  EXPECT_THAT(msg, ::testing::HasSubstr("running, compensating, completed"));
  EXPECT_THAT(ErrorMessage(Tool("list_sagas", {{"limit", 0}})),
              ::testing::HasSubstr("arguments.limit"));
  EXPECT_THAT(ErrorMessage(Tool("list_sagas", {{"limit", 1001}})),
              ::testing::HasSubstr("arguments.limit"));
  // Not base64url; base64url of something that is not a saga id; a raw id.
  for (const std::string& cursor :
       {std::string("!!garbage"), mcp::EncodeCursor("\xff\x01not-an-id"),
        std::string("01ARZ3NDEKTSV4RRFFQ69G5FAV")}) {
    json r = Tool("list_sagas", {{"cursor", cursor}});
    EXPECT_EQ(r["result"]["structuredContent"]["error"]["code"],
              "invalid_argument")
        << cursor;
    EXPECT_THAT(ErrorMessage(r), ::testing::HasSubstr("arguments.cursor"));
  }
  EXPECT_THAT(ErrorMessage(Tool("list_sagas", {{"cursor", 7}})),
              ::testing::HasSubstr("arguments.cursor"));
}

TEST_F(McpSessionTest, GetSagaLogPagesTheEventsAndUnknownSagasAreNotFound) {
  Initialize();
  Register(kThreeSteps);
  const std::string id = StartId({{"workflow", "three"}});
  ASSERT_OK(h_.AwaitInactive(id).status());
  json all = Out(Tool("get_saga_log", {{"saga_id", id}}));
  ASSERT_GE(all["events"].size(), 5u) << all.dump();
  EXPECT_EQ(all["saga_id"], id);
  EXPECT_EQ(all["events"][0]["seq"], 1);
  EXPECT_EQ(all["events"][0]["type"], "saga_started");
  EXPECT_TRUE(all["events"][0]["time_ms"].is_number_integer());
  EXPECT_TRUE(all["events"][0]["data"].is_object());
  EXPECT_EQ(all["events"].back()["type"], "saga_completed");
  EXPECT_FALSE(all.contains("next_seq"));

  json page = Out(
      Tool("get_saga_log", {{"saga_id", id}, {"from_seq", 2}, {"limit", 2}}));
  ASSERT_EQ(page["events"].size(), 2u);
  EXPECT_EQ(page["events"][0]["seq"], 2);
  EXPECT_EQ(page["events"][1]["seq"], 3);
  EXPECT_EQ(page["next_seq"], 4);

  json missing =
      Tool("get_saga_log", {{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}});
  EXPECT_EQ(Out(missing)["error"]["code"], "not_found");
  EXPECT_THAT(ErrorMessage(Tool("get_saga_log", json::object())),
              ::testing::HasSubstr("arguments.saga_id: required"));
  EXPECT_THAT(
      ErrorMessage(Tool("get_saga_log", {{"saga_id", id}, {"limit", 0}})),
      ::testing::HasSubstr("arguments.limit"));
}

// list_map_items: the items of a map step with their outcomes and their
// steps, filtered by status and paged; bad arguments name themselves.
TEST_F(McpSessionTest, ListMapItemsShowsEachItemsOutcomeFilteredAndPaged) {
  Initialize();
  Register(
      {{"name", "fanout"},
       {"version", 1},
       {"steps",
        {{{"name", "each"},
          {"map",
           {{"items", "${input.items}"},
            {"max_concurrency", 2},
            {"tolerated_failures", 2},
            {"steps",
             {{{"name", "check"},
               {"action", "fail"},
               {"params",
                {{"fail_attempts", "${item.fails}"}, {"kind", "bad_item"}}},
               {"retry", {{"max_attempts", 1}}}},
              {{"name", "say"},
               {"action", "echo"},
               {"params", {{"n", "${item.n}"}}}}}}}}}}}});
  json items = json::array();
  for (int n = 0; n < 5; ++n) {
    items.push_back({{"n", n}, {"fails", n == 1 || n == 3 ? 99 : 0}});
  }
  const std::string id =
      StartId({{"workflow", "fanout"}, {"input", {{"items", items}}}});
  auto done = h_.AwaitInactive(id);
  ASSERT_OK(done.status());
  ASSERT_EQ(done->state, SagaState::kCompleted) << done->body.dump();

  json all = Out(Tool("list_map_items", {{"saga_id", id}}));
  EXPECT_EQ(all["saga_id"], id);
  EXPECT_EQ(all["map_step"], "each");
  EXPECT_EQ(all["total"], 5);
  EXPECT_EQ(all["started"], 5);
  ASSERT_EQ(all["items"].size(), 5u) << all.dump();
  EXPECT_FALSE(all.contains("next_index"));
  const json& ok = all["items"][2];
  EXPECT_EQ(ok["index"], 2);
  EXPECT_EQ(ok["path"], "each[2]");
  EXPECT_EQ(ok["status"], "succeeded");
  EXPECT_EQ(ok["steps"][1]["path"], "each[2].say");
  EXPECT_EQ(ok["steps"][1]["name"], "say");
  EXPECT_EQ(ok["steps"][1]["output"], json({{"n", 2}}));
  const json& bad = all["items"][1];
  EXPECT_EQ(bad["status"], "failed");
  EXPECT_EQ(bad["error"]["kind"], "bad_item");
  EXPECT_EQ(bad["steps"][0]["path"], "each[1].check");
  EXPECT_EQ(bad["steps"][0]["status"], "failed");
  EXPECT_EQ(bad["steps"][0]["attempts"], 1);
  EXPECT_EQ(bad["steps"][1]["status"], "pending");

  json failed =
      Out(Tool("list_map_items", {{"saga_id", id}, {"status", "failed"}}));
  ASSERT_EQ(failed["items"].size(), 2u);
  EXPECT_EQ(failed["items"][0]["index"], 1);
  EXPECT_EQ(failed["items"][1]["index"], 3);

  json first = Out(Tool("list_map_items",
                        {{"saga_id", id}, {"map_step", "each"}, {"limit", 2}}));
  ASSERT_EQ(first["items"].size(), 2u);
  EXPECT_EQ(first["next_index"], 2);
  json second = Out(Tool("list_map_items",
                         {{"saga_id", id}, {"from_index", 2}, {"limit", 2}}));
  ASSERT_EQ(second["items"].size(), 2u);
  EXPECT_EQ(second["items"][0]["index"], 2);
  EXPECT_EQ(second["next_index"], 4);

  EXPECT_THAT(ErrorMessage(Tool("list_map_items",
                                {{"saga_id", id}, {"map_step", "check"}})),
              ::testing::HasSubstr("'check' is not a map step"));
  EXPECT_THAT(ErrorMessage(Tool("list_map_items",
                                {{"saga_id", id}, {"status", "broken"}})),
              ::testing::HasSubstr("arguments.status"));
  json missing =
      Tool("list_map_items", {{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}});
  EXPECT_EQ(Out(missing)["error"]["code"], "not_found");
  Register(kThreeSteps);
  const std::string plain = StartId({{"workflow", "three"}});
  ASSERT_OK(h_.AwaitInactive(plain).status());
  EXPECT_THAT(ErrorMessage(Tool("list_map_items", {{"saga_id", plain}})),
              ::testing::HasSubstr("has no map step"));
}

TEST_F(McpSessionTest, ListDlqShowsParkedSagasWithWhyAndPages) {
  Initialize();
  Register(kParks);
  Register(kThreeSteps);
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    ids.push_back(StartId({{"workflow", "parks"}}));
    ASSERT_OK(h_.AwaitStored(ids.back(), SagaState::kParked).status());
  }
  json first = Out(Tool("list_dlq", {{"limit", 1}}));
  ASSERT_EQ(first["entries"].size(), 1u) << first.dump();
  const json& e = first["entries"][0];
  EXPECT_EQ(e["saga_id"], ids[0]);  // oldest first
  EXPECT_EQ(e["workflow"], "parks");
  EXPECT_EQ(e["version"], 1);
  EXPECT_EQ(e["reason"], "step_failed");
  EXPECT_EQ(e["step"], "boom");
  EXPECT_EQ(e["last_error"], "bad: no luck");
  EXPECT_EQ(e["attempts"], 1);
  EXPECT_EQ(e["replay_count"], 0);
  EXPECT_TRUE(e["parked_ms"].is_number_integer());
  json second = Out(Tool("list_dlq", {{"cursor", first["next_cursor"]}}));
  ASSERT_EQ(second["entries"].size(), 1u);
  EXPECT_EQ(second["entries"][0]["saga_id"], ids[1]);
  EXPECT_FALSE(second.contains("next_cursor"));
  EXPECT_EQ(Out(Tool("list_dlq", {{"workflow", "three"}}))["entries"].size(),
            0u);
  // A parked saga's current step is the one that failed.
  json parked = Out(Tool("list_sagas", {{"state", "parked"}, {"limit", 1}}));
  EXPECT_EQ(parked["sagas"][0]["current_step"], "boom");
  // So is one that waits for its automatic replay.
  json redriven = kParks;
  redriven["name"] = "parks-again";
  redriven["dlq"] = {
      {"auto_replay", {{"max_replays", 1}, {"after_ms", 3600000}}}};
  Register(redriven);
  const std::string again = StartId({{"workflow", "parks-again"}});
  ASSERT_OK(h_.AwaitStored(again, SagaState::kParked).status());
  json waiting = Out(Tool("list_sagas", {{"workflow", "parks-again"}}));
  ASSERT_EQ(waiting["sagas"].size(), 1u) << waiting.dump();
  EXPECT_EQ(waiting["sagas"][0]["current_step"], "boom") << waiting.dump();
  EXPECT_THAT(ErrorMessage(Tool("list_dlq", {{"cursor", "nope"}})),
              ::testing::HasSubstr("arguments.cursor"));
}

TEST_F(McpSessionTest,
       StartWithWaitAnswersWithTheFinalSagaAfterOrderedProgress) {
  Initialize();
  Register(kThreeSteps);
  json r = Call("tools/call",
                {{"name", "start_workflow"},
                 {"arguments", {{"workflow", "three"}, {"wait_ms", 20000}}},
                 {"_meta", {{"progressToken", "tok"}}}});
  const int call_id = next_id_ - 1;
  json out = Out(r);
  ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  EXPECT_EQ(out["state"], "completed");
  EXPECT_EQ(out["created"], true);
  EXPECT_FALSE(out.contains("timed_out"));
  EXPECT_EQ(out["saga"]["saga_id"], out["saga_id"]);
  EXPECT_EQ(out["saga"]["state"], "completed");
  EXPECT_EQ(out["saga"]["steps"][2]["output"], json({{"n", 3}}));

  std::vector<json> progress = Notes("notifications/progress");
  ASSERT_EQ(progress.size(), 3u);
  for (size_t i = 0; i < progress.size(); ++i) {
    EXPECT_EQ(progress[i]["progressToken"], "tok");
    EXPECT_EQ(progress[i]["progress"], i + 1);
    EXPECT_EQ(progress[i]["total"], 3);
  }
  EXPECT_EQ(progress[0]["message"], "step 'a' succeeded");
  EXPECT_EQ(progress[2]["message"], "step 'c' succeeded");
  // Every notification precedes the reply and is tied to the request.
  size_t reply_at = 0;
  for (size_t i = 0; i < sent_.size(); ++i) {
    if (sent_[i].value("method", "") == "notifications/progress") {
      EXPECT_EQ(related_[i], call_id);
      EXPECT_EQ(reply_at, 0u) << "progress after the reply";
    }
    if (sent_[i].value("id", json()) == call_id) reply_at = i;
  }
}

TEST_F(McpSessionTest, StartWithWaitCountsCompensationsInProgress) {
  Initialize();
  Register({{"name", "undo"},
            {"version", 1},
            {"steps",
             {{{"name", "reserve"},
               {"action", "echo"},
               {"compensate", {{"action", "echo"}}}},
              {{"name", "charge"},
               {"action", "fail"},
               {"params", {{"error", "declined"}, {"kind", "card"}}},
               {"retry", {{"max_attempts", 1}}}}}}});
  json r = Call("tools/call",
                {{"name", "start_workflow"},
                 {"arguments", {{"workflow", "undo"}, {"wait_ms", 20000}}},
                 {"_meta", {{"progressToken", 7}}}});
  json out = Out(r);
  EXPECT_EQ(out["state"], "compensated");
  EXPECT_EQ(out["saga"]["failure"]["message"], "declined");
  EXPECT_EQ(out["saga"]["steps"][0]["status"], "succeeded");
  EXPECT_EQ(out["saga"]["steps"][0]["compensation"], "succeeded");
  std::vector<json> p = Notes("notifications/progress");
  ASSERT_EQ(p.size(), 3u) << json(p).dump();
  EXPECT_EQ(p[0]["progressToken"], 7);
  double last = 0;
  for (const json& n : p) {
    EXPECT_GT(n["progress"].get<double>(), last);
    EXPECT_GE(n["total"].get<double>(), n["progress"].get<double>());
    last = n["progress"].get<double>();
  }
  EXPECT_THAT(p[1]["message"].get<std::string>(),
              ::testing::HasSubstr("step 'charge' failed"));
  EXPECT_EQ(p[2]["message"], "step 'reserve' compensated");
  EXPECT_EQ(p[2]["total"], 3);
}

TEST_F(McpSessionTest, StartWithWaitTimesOutAndTheSagaKeepsRunning) {
  Initialize();
  Register(kHeld);
  json r = Tool("start_workflow", {{"workflow", "held"}, {"wait_ms", 30}});
  const int call_id = next_id_ - 1;
  json out = Out(r);
  EXPECT_EQ(out["timed_out"], true);
  EXPECT_EQ(out["state"], "running");
  EXPECT_EQ(out["created"], true);
  EXPECT_FALSE(out.contains("saga"));
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  ASSERT_TRUE(held_.Complete(ActionResult::Success(nullptr)));
  ASSERT_OK(
      h_.AwaitStored(out["saga_id"].get<std::string>(), SagaState::kCompleted)
          .status());
  RunFor(20);
  EXPECT_EQ(RepliesTo(call_id), 1u);
  EXPECT_TRUE(Notes("notifications/progress").empty());  // no token asked

  EXPECT_THAT(ErrorMessage(Tool("start_workflow",
                                {{"workflow", "held"}, {"wait_ms", 600001}})),
              ::testing::HasSubstr("arguments.wait_ms"));
}

TEST_F(McpSessionTest, CancelledWaitingCallIsNeverAnsweredButTheSagaCompletes) {
  Initialize();
  Register(kHeld);
  const int call_id = Send(
      "tools/call", {{"name", "start_workflow"},
                     {"arguments", {{"workflow", "held"}, {"wait_ms", 60000}}},
                     {"_meta", {{"progressToken", "c"}}}});
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  const auto saga_id =
      Out(Tool("list_sagas", {{"limit", 1}}))["sagas"][0]["saga_id"]
          .get<std::string>();
  session_->OnFrame(
      json{{"jsonrpc", "2.0"},
           {"method", "notifications/cancelled"},
           {"params", {{"requestId", call_id}, {"reason", "user"}}}}
          .dump());
  // Unknown and malformed cancellations are ignored.
  session_->OnFrame(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":999}})");
  session_->OnFrame(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{}})");
  ASSERT_TRUE(held_.Complete(ActionResult::Success(nullptr)));
  ASSERT_OK(h_.AwaitStored(saga_id, SagaState::kCompleted).status());
  RunFor(20);
  EXPECT_EQ(RepliesTo(call_id), 0u);
  EXPECT_TRUE(Notes("notifications/progress").empty());
  // The session still works, and the same id can be used again.
  EXPECT_EQ(Call("ping")["result"], json::object());
}

TEST_F(McpSessionTest, CancelBeforeTheStartIsDurableStillStartsTheSaga) {
  Initialize();
  Register(kHeld);
  const int call_id =
      Send("tools/call",
           {{"name", "start_workflow"},
            {"arguments", {{"workflow", "held"}, {"wait_ms", 60000}}}});
  session_->OnFrame(json{{"jsonrpc", "2.0"},
                         {"method", "notifications/cancelled"},
                         {"params", {{"requestId", call_id}}}}
                        .dump());
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  ASSERT_TRUE(held_.Complete(ActionResult::Success(nullptr)));
  RunFor(30);
  EXPECT_EQ(RepliesTo(call_id), 0u);
  EXPECT_EQ(Out(Tool("list_sagas", {{"state", "completed"}}))["sagas"].size(),
            1u);
}

TEST_F(McpSessionTest, WaitOnASagaThatEndedBeforeTheWatchAnswersAtOnce) {
  Initialize();
  Register(kThreeSteps);
  json first = Out(Tool(
      "start_workflow",
      {{"workflow", "three"}, {"idempotency_key", "k"}, {"wait_ms", 20000}}));
  ASSERT_EQ(first["state"], "completed");
  // The same key again: the saga ended long ago.
  json again = Out(Tool(
      "start_workflow",
      {{"workflow", "three"}, {"idempotency_key", "k"}, {"wait_ms", 20000}}));
  EXPECT_EQ(again["saga_id"], first["saga_id"]);
  EXPECT_EQ(again["created"], false);
  EXPECT_EQ(again["state"], "completed");
  EXPECT_EQ(again["saga"]["steps"].size(), 3u);
  // A saga parked by its very first transition (a sleep whose duration
  // cannot be rendered) has ended before the start is even answered.
  Register({{"name", "bad-sleep"},
            {"version", 1},
            {"on_failure", "park"},
            {"steps",
             {{{"name", "nap"},
               {"action", "sleep"},
               {"params", {{"duration_ms", "${input.ms}"}}}}}}});
  json parked = Out(
      Tool("start_workflow", {{"workflow", "bad-sleep"}, {"wait_ms", 20000}}));
  EXPECT_EQ(parked["state"], "parked") << parked.dump();
  EXPECT_EQ(parked["saga"]["state"], "parked");
}

TEST_F(McpSessionTest, LogMessagesDefaultToWarningAndFollowSetLevel) {
  Initialize();
  Register({{"name", "flaky"},
            {"version", 1},
            {"steps",
             {{{"name", "try"},
               {"action", "fail"},
               {"params",
                {{"fail_attempts", 1}, {"kind", "conn"}, {"error", "down"}}},
               {"retry", {{"max_attempts", 2}, {"initial_backoff_ms", 1}}}}}}});
  json first =
      Out(Tool("start_workflow", {{"workflow", "flaky"}, {"wait_ms", 20000}}));
  ASSERT_EQ(first["state"], "completed");
  std::vector<json> logs = Notes("notifications/message");
  ASSERT_EQ(logs.size(), 1u) << json(logs).dump();  // the retry; not the info
  EXPECT_EQ(logs[0]["level"], "warning");
  EXPECT_EQ(logs[0]["logger"], "cde.saga");
  EXPECT_EQ(logs[0]["data"]["event"], "attempt_failed");
  EXPECT_EQ(logs[0]["data"]["step"], "try");
  EXPECT_EQ(logs[0]["data"]["saga_id"], first["saga_id"]);
  EXPECT_EQ(logs[0]["data"]["error"]["kind"], "conn");
  EXPECT_THAT(logs[0]["data"]["message"].get<std::string>(),
              ::testing::HasSubstr("retrying"));

  EXPECT_EQ(Call("logging/setLevel", {{"level", "info"}})["result"],
            json::object());
  // Started here, not waited on: still followed.
  const std::string id = StartId({{"workflow", "flaky"}});
  ASSERT_OK(h_.AwaitInactive(id).status());
  ASSERT_TRUE(
      h_.RunUntil([&] { return Notes("notifications/message").size() == 3; }));
  logs = Notes("notifications/message");
  EXPECT_EQ(logs[2]["level"], "info");
  EXPECT_EQ(logs[2]["data"]["event"], "saga_completed");
  EXPECT_EQ(logs[2]["data"]["saga_id"], id);
  EXPECT_TRUE(related_.back().is_null());  // no request to tie it to

  json bad = Call("logging/setLevel", {{"level", "loud"}});
  EXPECT_EQ(bad["error"]["code"], jsonrpc::kInvalidParams);
  EXPECT_THAT(bad["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("params.level"));
  EXPECT_EQ(Call("logging/setLevel", json::object())["error"]["code"],
            jsonrpc::kInvalidParams);
}

TEST_F(McpSessionTest, ParkedSagasAreErrorMessages) {
  Initialize();
  Call("logging/setLevel", {{"level", "error"}});
  Register(kParks);
  json r =
      Out(Tool("start_workflow", {{"workflow", "parks"}, {"wait_ms", 20000}}));
  ASSERT_EQ(r["state"], "parked");
  std::vector<json> logs = Notes("notifications/message");
  ASSERT_EQ(logs.size(), 1u) << json(logs).dump();  // step_failed is a warning
  EXPECT_EQ(logs[0]["level"], "error");
  EXPECT_EQ(logs[0]["data"]["event"], "saga_parked");
  EXPECT_EQ(logs[0]["data"]["step"], "boom");
  EXPECT_THAT(logs[0]["data"]["message"].get<std::string>(),
              ::testing::HasSubstr("dead-letter queue"));
  // The saga says what to do about it, naming the tool.
  const std::string next = r["saga"]["next"].get<std::string>();
  EXPECT_THAT(next,
              ::testing::HasSubstr("step 'boom' failed with bad: no luck"));
  EXPECT_THAT(next, ::testing::HasSubstr("call replay_saga with this saga_id"));
  EXPECT_EQ(Out(Tool("get_saga", {{"saga_id", r["saga_id"]}}))["next"], next);
}

TEST_F(McpSessionTest, CompletionCompletesSagaIdsWorkflowNamesAndVersions) {
  Initialize();
  Register(kThreeSteps);
  Register({{"name", "three"},
            {"version", 2},
            {"steps", {{{"name", "x"}, {"action", "noop"}}}}});
  Register(kHeld);
  const std::string id = StartId({{"workflow", "three"}});
  ASSERT_OK(h_.AwaitInactive(id).status());
  auto complete = [&](json ref, std::string arg, std::string value,
                      json context = nullptr) {
    json params = {{"ref", ref},
                   {"argument", {{"name", arg}, {"value", value}}}};
    if (!context.is_null()) params["context"] = {{"arguments", context}};
    return Call("completion/complete", params);
  };
  const json wf = {{"type", "ref/resource"},
                   {"uri", "workflow://{name}/{version}"}};
  json names = complete(wf, "name", "th")["result"]["completion"];
  EXPECT_EQ(names["values"], json({"three"}));
  EXPECT_EQ(names["total"], 1);
  EXPECT_EQ(names["hasMore"], false);
  EXPECT_EQ(complete(wf, "name", "")["result"]["completion"]["values"],
            json({"held", "three"}));
  EXPECT_EQ(complete(wf, "version", "",
                     {{"name", "three"}})["result"]["completion"]["values"],
            json({"2", "1"}));
  EXPECT_EQ(complete(wf, "version", "")["result"]["completion"]["values"],
            json::array());

  for (const char* uri : {"saga://{saga_id}", "saga://{saga_id}/log"}) {
    const json ref = {{"type", "ref/resource"}, {"uri", uri}};
    json c = complete(ref, "saga_id", id.substr(0, 12))["result"]["completion"];
    EXPECT_EQ(c["values"], json({id})) << uri;
    std::string lower = id.substr(0, 5);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
    EXPECT_EQ(complete(ref, "saga_id", lower)["result"]["completion"]["values"],
              json({id}));
    EXPECT_EQ(complete(ref, "saga_id", id)["result"]["completion"]["values"],
              json({id}));
    EXPECT_EQ(complete(ref, "saga_id", "Z")["result"]["completion"]["values"],
              json::array());
    EXPECT_EQ(complete(ref, "saga_id", "")["result"]["completion"]["values"],
              json({id}));
  }
  // A prompt's arguments complete as the templates' variables do.
  json prompt = complete({{"type", "ref/prompt"}, {"name", "diagnose_saga"}},
                         "saga_id", id.substr(0, 10));
  EXPECT_EQ(prompt["result"]["completion"]["values"], json({id}));
  prompt = complete({{"type", "ref/prompt"}, {"name", "operate_dlq"}},
                    "workflow", "th");
  EXPECT_EQ(prompt["result"]["completion"]["values"], json({"three"}));
  EXPECT_EQ(complete({{"type", "ref/prompt"}, {"name", "any"}}, "x",
                     "y")["error"]["code"],
            jsonrpc::kInvalidParams);
  EXPECT_EQ(complete({{"type", "ref/prompt"}, {"name", "diagnose_saga"}},
                     "workflow", "")["error"]["code"],
            jsonrpc::kInvalidParams);

  EXPECT_EQ(complete({{"type", "ref/resource"}, {"uri", "saga://{saga_id}"}},
                     "name", "")["error"]["code"],
            jsonrpc::kInvalidParams);
  EXPECT_EQ(complete({{"type", "ref/resource"}, {"uri", "file:///{path}"}},
                     "path", "")["error"]["code"],
            jsonrpc::kInvalidParams);
  EXPECT_EQ(complete({{"type", "ref/other"}}, "a", "")["error"]["code"],
            jsonrpc::kInvalidParams);
  EXPECT_EQ(Call("completion/complete", {{"ref", wf}})["error"]["code"],
            jsonrpc::kInvalidParams);
}

TEST_F(McpSessionTest, DiagnoseSagaEmbedsTheSagaAndItsLog) {
  json init =
      Call("initialize", {{"protocolVersion", "2025-06-18"},
                          {"capabilities", json::object()},
                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  EXPECT_TRUE(init["result"]["capabilities"].contains("prompts"));
  const json listed = Call("prompts/list")["result"]["prompts"];
  std::vector<std::string> names;
  for (const json& p : listed) names.push_back(p["name"].get<std::string>());
  EXPECT_THAT(names, ::testing::ElementsAre("diagnose_saga", "operate_dlq",
                                            "write_workflow"));
  Register(kParks);
  json r =
      Out(Tool("start_workflow", {{"workflow", "parks"}, {"wait_ms", 20000}}));
  ASSERT_EQ(r["state"], "parked");
  const std::string id = r["saga_id"].get<std::string>();
  json got = Call("prompts/get", {{"name", "diagnose_saga"},
                                  {"arguments", {{"saga_id", id}}}});
  const json& messages = got["result"]["messages"];
  ASSERT_EQ(messages.size(), 3u) << got.dump();
  const json& saga = messages[0]["content"];
  EXPECT_EQ(saga["type"], "resource");
  EXPECT_EQ(saga["resource"]["uri"], "saga://" + id);
  EXPECT_EQ(json::parse(saga["resource"]["text"].get<std::string>())["state"],
            "parked");
  const json& log = messages[1]["content"]["resource"];
  EXPECT_EQ(log["uri"], "saga://" + id + "/log");
  EXPECT_THAT(log["text"].get<std::string>(),
              ::testing::HasSubstr("saga_parked"));
  EXPECT_THAT(messages[2]["content"]["text"].get<std::string>(),
              ::testing::HasSubstr("replay_saga"));
  // What is wrong with the arguments is named; nothing else happens.
  EXPECT_EQ(Call("prompts/get",
                 {{"name", "diagnose_saga"},
                  {"arguments", {{"saga_id", "nope"}}}})["error"]["code"],
            jsonrpc::kInvalidParams);
  json missing =
      Call("prompts/get",
           {{"name", "diagnose_saga"},
            {"arguments", {{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}}});
  EXPECT_EQ(missing["error"]["message"],
            "params.arguments.saga_id: no saga 01ARZ3NDEKTSV4RRFFQ69G5FAV");
  EXPECT_EQ(Call("prompts/get", {{"name", "nope"}})["error"]["code"],
            jsonrpc::kInvalidParams);

  // operate_dlq embeds the parked sagas; write_workflow an example.
  json dlq = Call("prompts/get", {{"name", "operate_dlq"},
                                  {"arguments", {{"workflow", "parks"}}}});
  EXPECT_THAT(
      dlq["result"]["messages"][0]["content"]["text"].get<std::string>(),
      ::testing::HasSubstr(id));
  json write = Call(
      "prompts/get",
      {{"name", "write_workflow"}, {"arguments", {{"task", "greet someone"}}}});
  const json& w = write["result"]["messages"];
  ASSERT_EQ(w.size(), 4u) << write.dump();
  // The language as the validator knows it, then an example, then the task.
  const std::string language = w[0]["content"]["text"].get<std::string>();
  ASSERT_NE(language.find(":\n"), std::string::npos);
  EXPECT_EQ(json::parse(language.substr(language.find(":\n") + 2)),
            h_.engine().DefinitionSchema());
  EXPECT_EQ(w[2]["content"]["resource"]["uri"], "workflow://parks/1");
  EXPECT_THAT(w[3]["content"]["text"].get<std::string>(),
              ::testing::HasSubstr("greet someone"));
}

TEST_F(McpSessionTest, ClosingTheSessionStopsItsWaits) {
  Initialize();
  Register(kHeld);
  const int call_id =
      Send("tools/call",
           {{"name", "start_workflow"},
            {"arguments", {{"workflow", "held"}, {"wait_ms", 60000}}}});
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  session_->Close();
  ASSERT_TRUE(held_.Complete(ActionResult::Success(nullptr)));
  RunFor(20);
  EXPECT_EQ(RepliesTo(call_id), 0u);
  // The harness checks at teardown that no timer handle was left open.
}

// --- inbound rate limits ---

using test::kTraceId;
using test::kTraceparent;

TEST_F(McpSessionTest, ARequestOverTheRateLimitIsRefusedAndChangesNothing) {
  Initialize();
  Register(kThreeSteps);  // unlimited so far
  Limit({.rate_per_sec = 0.001, .burst = 1});
  Initialize();
  EXPECT_EQ(
      Tool("start_workflow", {{"workflow", "three"}})["result"]["isError"],
      false);
  ASSERT_TRUE(h_.RunUntil([&] { return StoredSagas() == 1; }));
  json refused = Tool("start_workflow", {{"workflow", "three"}});
  EXPECT_EQ(refused["error"]["code"], kRateLimited) << refused.dump();
  EXPECT_FALSE(refused.contains("result"));
  const int64_t wait =
      refused["error"]["data"]["retry_after_ms"].get<int64_t>();
  EXPECT_GT(wait, 0);
  EXPECT_EQ(refused["error"]["message"],
            "rate limit exceeded: retry in " + std::to_string(wait) + " ms");
  RunFor(50);
  EXPECT_EQ(StoredSagas(), 1u) << "the refused start started no saga";
  // Any method counts, even one that would fail.
  EXPECT_EQ(Call("no/such/method")["error"]["code"], kRateLimited);
}

TEST_F(McpSessionTest, InitializeAndPingAreNeverLimited) {
  Limit({.rate_per_sec = 0.001, .burst = 1});
  Initialize();
  EXPECT_TRUE(Call("tools/list").contains("result"));
  EXPECT_EQ(Call("tools/list")["error"]["code"], kRateLimited);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Call("ping")["result"], json::object());
    EXPECT_TRUE(Call("initialize", {{"protocolVersion", "2025-06-18"}})
                    .contains("result"));
  }
}

TEST_F(McpSessionTest, NotificationsAreNeverLimitedNorTakeTokens) {
  Initialize();
  Register(kHeld);
  Limit({.rate_per_sec = 0.001, .burst = 2});
  Call("initialize", {{"protocolVersion", "2025-06-18"}});
  for (int i = 0; i < 10; ++i) {
    session_->OnFrame(
        R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }
  EXPECT_TRUE(session_->initialized());
  // The bucket is still full: two requests pass.
  const int waiting =
      Send("tools/call",
           {{"name", "start_workflow"},
            {"arguments", {{"workflow", "held"}, {"wait_ms", 60000}}}});
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  EXPECT_TRUE(Call("tools/list").contains("result"));
  EXPECT_EQ(Call("tools/list")["error"]["code"], kRateLimited);
  // Over the limit, a cancellation still ends the wait: never answered.
  session_->OnFrame(json{{"jsonrpc", "2.0"},
                         {"method", "notifications/cancelled"},
                         {"params", {{"requestId", waiting}}}}
                        .dump());
  held_.Complete(ActionResult::Success({{"done", true}}));
  RunFor(100);
  EXPECT_EQ(ReplyTo(waiting), nullptr);
}

TEST_F(McpSessionTest, TokensRefillOverTime) {
  Limit({.rate_per_sec = 20, .burst = 1});  // one every 50 ms
  Initialize();
  EXPECT_TRUE(Call("tools/list").contains("result"));
  json refused = Call("tools/list");
  ASSERT_EQ(refused["error"]["code"], kRateLimited);
  const int64_t wait =
      refused["error"]["data"]["retry_after_ms"].get<int64_t>();
  EXPECT_GE(wait, 1);
  EXPECT_LE(wait, 50);
  RunFor(static_cast<int>(wait) + 30);
  EXPECT_TRUE(Call("tools/list").contains("result"));
}

TEST_F(McpSessionTest, TheTransportsKeyChoosesTheBucket) {
  Limit({.rate_per_sec = 0.001, .burst = 1});
  Initialize();
  EXPECT_TRUE(Call("tools/list").contains("result"));  // "session:test"
  const auto list = [&](const std::string& key) {
    const int id = next_id_++;
    session_->OnFrame(
        json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/list"}}.dump(),
        McpMessageContext{.rate_key = key});
    return ReplyTo(id);
  };
  EXPECT_TRUE(list("token:a").contains("result"));
  EXPECT_EQ(list("token:a")["error"]["code"], kRateLimited);
  EXPECT_TRUE(list("token:b").contains("result"));
}

// --- correlation and trace ids ---

TEST_F(McpSessionTest, StartWorkflowTakesCorrelationAndTraceFromMeta) {
  Initialize();
  Register(kThreeSteps);
  json r = CallWith(
      {{"name", "start_workflow"},
       {"arguments", {{"workflow", "three"}}},
       {"_meta",
        {{"correlation_id", "req-42"}, {"traceparent", kTraceparent}}}});
  ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  const auto id = Out(r)["saga_id"].get<std::string>();
  json saga = GetSaga(id);
  EXPECT_EQ(saga["correlation_id"], "req-42");
  EXPECT_EQ(saga["trace_id"], kTraceId);
  json log = Out(Tool("get_saga_log", {{"saga_id", id}, {"limit", 1}}));
  EXPECT_EQ(log["events"][0]["data"]["correlation_id"], "req-42");
  EXPECT_EQ(log["events"][0]["data"]["trace_id"], kTraceId);
  // The saga resource shows the same.
  json read = Call("resources/read", {{"uri", "saga://" + id}});
  json contents =
      json::parse(read["result"]["contents"][0]["text"].get<std::string>());
  EXPECT_EQ(contents["correlation_id"], "req-42");
  EXPECT_EQ(contents["trace_id"], kTraceId);
}

TEST_F(McpSessionTest, WithoutIdsTheSagaIdCorrelatesAndATraceStarts) {
  Initialize();
  Register(kThreeSteps);
  const std::string id = StartId({{"workflow", "three"}});
  json saga = GetSaga(id);
  EXPECT_EQ(saga["correlation_id"], id);
  const auto trace = saga["trace_id"].get<std::string>();
  EXPECT_THAT(trace, ::testing::MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(GetSaga(StartId({{"workflow", "three"}}))["trace_id"], trace);
}

TEST_F(McpSessionTest, TransportHeadersServeWhenMetaHasNone) {
  Initialize();
  Register(kThreeSteps);
  const McpMessageContext headers{.correlation_id = "hdr-1",
                                  .traceparent = kTraceparent};
  json r = CallWith(
      {{"name", "start_workflow"}, {"arguments", {{"workflow", "three"}}}},
      headers);
  json saga = GetSaga(Out(r)["saga_id"].get<std::string>());
  EXPECT_EQ(saga["correlation_id"], "hdr-1");
  EXPECT_EQ(saga["trace_id"], kTraceId);
  // _meta wins over the headers.
  const std::string other =
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  r = CallWith(
      {{"name", "start_workflow"},
       {"arguments", {{"workflow", "three"}}},
       {"_meta", {{"correlation_id", "meta-1"}, {"traceparent", other}}}},
      headers);
  saga = GetSaga(Out(r)["saga_id"].get<std::string>());
  EXPECT_EQ(saga["correlation_id"], "meta-1");
  EXPECT_EQ(saga["trace_id"], "0af7651916cd43dd8448eb211c80319c");
}

TEST_F(McpSessionTest, ABadCorrelationIdIsAToolErrorAndStartsNothing) {
  Initialize();
  Register(kThreeSteps);
  for (const json& bad :
       {json(7), json(std::string(129, 'x')), json("line\nbreak")}) {
    json r = CallWith({{"name", "start_workflow"},
                       {"arguments", {{"workflow", "three"}}},
                       {"_meta", {{"correlation_id", bad}}}});
    EXPECT_THAT(ErrorMessage(r),
                ::testing::StartsWith("_meta.correlation_id: "))
        << bad;
    EXPECT_EQ(Out(r)["error"]["code"], "invalid_argument");
  }
  json r = CallWith(
      {{"name", "start_workflow"}, {"arguments", {{"workflow", "three"}}}},
      McpMessageContext{.correlation_id = std::string(200, 'y')});
  EXPECT_THAT(ErrorMessage(r),
              ::testing::StartsWith("X-Correlation-ID header: "));
  RunFor(20);
  EXPECT_EQ(StoredSagas(), 0u);
}

TEST_F(McpSessionTest, AMalformedTraceparentStartsAFreshTrace) {
  Initialize();
  Register(kThreeSteps);
  for (const json& bad :
       {json(5), json("00-zz-yy-01"),
        json("00-00000000000000000000000000000000-00f067aa0ba902b7-01")}) {
    json r = CallWith({{"name", "start_workflow"},
                       {"arguments", {{"workflow", "three"}}},
                       {"_meta", {{"traceparent", bad}}}});
    ASSERT_EQ(r["result"]["isError"], false) << r.dump();
    const auto trace = GetSaga(Out(r)["saga_id"].get<std::string>())["trace_id"]
                           .get<std::string>();
    EXPECT_THAT(trace, ::testing::MatchesRegex("[0-9a-f]{32}")) << bad;
    EXPECT_NE(trace, "00000000000000000000000000000000");
  }
}

TEST_F(McpSessionTest, ATaskAugmentedStartTakesTheIdsToo) {
  Initialize();
  Register(kThreeSteps);
  json r = CallWith(
      {{"name", "start_workflow"},
       {"arguments", {{"workflow", "three"}}},
       {"task", json::object()},
       {"_meta",
        {{"correlation_id", "task-1"}, {"traceparent", kTraceparent}}}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  json saga = GetSaga(r["result"]["task"]["taskId"].get<std::string>());
  EXPECT_EQ(saga["correlation_id"], "task-1");
  EXPECT_EQ(saga["trace_id"], kTraceId);
  json bad = CallWith({{"name", "start_workflow"},
                       {"arguments", {{"workflow", "three"}}},
                       {"task", json::object()},
                       {"_meta", {{"correlation_id", 1}}}});
  EXPECT_EQ(bad["error"]["code"], jsonrpc::kInvalidParams);
  EXPECT_THAT(bad["error"]["message"].get<std::string>(),
              ::testing::StartsWith("_meta.correlation_id"));
}

TEST_F(McpSessionTest, StepAttemptsCarryTheSagasCorrelationAndTraceIds) {
  Initialize();
  Register(kHeld);
  json r = CallWith(
      {{"name", "start_workflow"},
       {"arguments", {{"workflow", "held"}}},
       {"_meta",
        {{"correlation_id", "req-9"}, {"traceparent", kTraceparent}}}});
  ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  const AttemptRequest got = held_.requests().back();
  EXPECT_EQ(got.correlation_id, "req-9");
  EXPECT_EQ(got.trace_id, kTraceId);
  held_.Complete(ActionResult::Success(json::object()));
}

}  // namespace
}  // namespace cde

// ---- Scopes ----------------------------------------------------------------

namespace cde {
namespace {

McpMessageContext As(const std::string& name,
                     std::initializer_list<Scope> scopes) {
  McpMessageContext c;
  c.caller.name = name;
  c.caller.scopes = ScopeSet{};
  for (Scope s : scopes) c.caller.scopes.Add(s);
  return c;
}

TEST_F(McpSessionTest, EveryToolNeedsAScope) {
  for (const json& tool : McpSession::Tools()) {
    EXPECT_TRUE(McpSession::ToolScope(tool["name"].get<std::string>()))
        << tool["name"];
  }
  EXPECT_FALSE(McpSession::ToolScope("no_such_tool").has_value());
}

TEST_F(McpSessionTest, AToolOutsideTheTokensScopesIsForbiddenNamingTheScope) {
  Initialize();
  Register(kThreeSteps);
  const McpMessageContext reader = As("dashboard", {Scope::kRead});
  json r = CallWith(
      {{"name", "start_workflow"}, {"arguments", {{"workflow", "three"}}}},
      reader);
  ASSERT_EQ(r["result"]["isError"], true) << r.dump();
  const json error = r["result"]["structuredContent"]["error"];
  EXPECT_EQ(error["code"], "forbidden");
  EXPECT_EQ(error["scope"], "run");
  EXPECT_THAT(error["message"].get<std::string>(),
              ::testing::HasSubstr("token 'dashboard' lacks the scope 'run' "
                                   "that start_workflow needs"));
  EXPECT_EQ(StoredSagas(), 0u);  // nothing started

  r = CallWith({{"name", "list_workflows"}, {"arguments", json::object()}},
               reader);
  EXPECT_EQ(r["result"]["isError"], false) << r.dump();
  r = CallWith(
      {{"name", "register_workflow"}, {"arguments", {{"definition", kParks}}}},
      As("runner", {Scope::kRead, Scope::kRun}));
  EXPECT_EQ(r["result"]["structuredContent"]["error"]["scope"], "define");
  r = CallWith({{"name", "replay_saga"}, {"arguments", {{"saga_id", "x"}}}},
               As("runner", {Scope::kRead, Scope::kRun}));
  EXPECT_EQ(r["result"]["structuredContent"]["error"]["scope"], "admin");
  // Who registered a workflow is kept with it.
  r = CallWith(
      {{"name", "register_workflow"}, {"arguments", {{"definition", kParks}}}},
      As("author", {Scope::kDefine}));
  ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  json registered_by;
  const json listed = Out(Tool("list_workflows", json::object()));
  for (const json& w : listed["workflows"]) {
    if (w["name"] == "parks") registered_by = w["registered_by"];
  }
  EXPECT_EQ(registered_by, "author") << listed.dump();
  r = CallWith(
      {{"name", "start_workflow"}, {"arguments", {{"workflow", "three"}}}},
      As("runner", {Scope::kRun}));
  EXPECT_EQ(r["result"]["isError"], false) << r.dump();
  // Who started it is kept with the saga and on its log.
  const std::string id = Out(r).value("saga_id", "");
  EXPECT_EQ(GetSaga(id)["started_by"], "runner");
  json log = Out(Tool("get_saga_log", {{"saga_id", id}}));
  EXPECT_EQ(log["events"][0]["type"], "saga_started");
  EXPECT_EQ(log["events"][0]["data"]["started_by"], "runner");
  // Over stdio (no context): local.
  const std::string mine = StartId({{"workflow", "three"}});
  EXPECT_EQ(GetSaga(mine)["started_by"], "local");
}

// Cancels and replays record who asked, on the saga and on its log.
TEST_F(McpSessionTest, WhoCancelledOrReplayedASagaIsOnItsSnapshotAndLog) {
  Initialize();
  Register(kHeld);
  Register(kParks);
  const std::string running = StartId({{"workflow", "held"}});
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  json r =
      CallWith({{"name", "cancel_saga"}, {"arguments", {{"saga_id", running}}}},
               As("runner", {Scope::kRun}));
  ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  held_.Complete(ActionResult::Success(nullptr));
  ASSERT_OK(h_.AwaitStored(running, SagaState::kCancelled).status());
  EXPECT_EQ(GetSaga(running)["cancelled_by"], "runner");
  json log = Out(Tool("get_saga_log", {{"saga_id", running}}));
  EXPECT_EQ(log["events"][2]["type"], "cancel_requested") << log.dump();
  EXPECT_EQ(log["events"][2]["data"]["by"], "runner");

  const std::string parked = StartId({{"workflow", "parks"}});
  ASSERT_EQ(h_.AwaitInactive(parked)->state, SagaState::kParked);
  r = CallWith({{"name", "replay_saga"}, {"arguments", {{"saga_id", parked}}}},
               As("ops", {Scope::kAdmin}));
  ASSERT_EQ(r["result"]["isError"], false) << r.dump();
  ASSERT_EQ(h_.AwaitInactive(parked)->state, SagaState::kParked);  // again
  EXPECT_EQ(GetSaga(parked)["replayed_by"], "ops");
  EXPECT_FALSE(GetSaga(running).contains("replayed_by"));
}

TEST_F(McpSessionTest, OtherMethodsOutsideTheScopesAreForbiddenErrors) {
  Initialize();
  const int id = next_id_++;
  session_->OnFrame(json{{"jsonrpc", "2.0"},
                         {"id", id},
                         {"method", "resources/list"},
                         {"params", json::object()}}
                        .dump(),
                    As("runner", {Scope::kRun}));
  h_.RunUntil([&] { return ReplyTo(id) != nullptr; });
  const json r = ReplyTo(id);
  EXPECT_EQ(r["error"]["code"], kForbidden) << r.dump();
  EXPECT_EQ(r["error"]["data"]["scope"], "read");
  EXPECT_EQ(McpSession::MethodScope("tasks/cancel"), Scope::kRun);
  EXPECT_FALSE(McpSession::MethodScope("tools/list").has_value());
  EXPECT_FALSE(McpSession::MethodScope("ping").has_value());
}

}  // namespace
}  // namespace cde
