// MCP resources (saga://, workflow://, subscriptions) and tasks (the
// task-augmented start_workflow, tasks/*) over a real engine on a memory
// store, as a client sees them on the wire.
#include <gmock/gmock.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr int kResourceNotFound = -32002;

json Workflow(const std::string& name, json steps, uint32_t version = 1) {
  return {{"name", name}, {"version", version}, {"steps", std::move(steps)}};
}

class McpResourcesTasksTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(""); }

  void Open(const std::string& dir) {
    ASSERT_OK(h_.Open(dir, {{"held", held_.AsAction()}}));
    NewSession();
  }
  void NewSession(McpSessionOptions options = {}) {
    if (session_) session_->Close();
    session_ = McpSession::Create(
        &h_.engine(), h_.loop(),
        [this](McpSession::OutFrame frame) {
          sent_.push_back(json::parse(frame.text));
          related_.push_back(frame.related);
        },
        std::move(options));
    Call("initialize", {{"protocolVersion", "2025-11-25"},
                        {"capabilities", json::object()},
                        {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    session_->OnFrame(
        R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }
  void TearDown() override {
    if (session_) session_->Close();
  }

  // Sends a request without waiting; returns its id.
  int Send(const std::string& method, json params = json::object()) {
    const int id = next_id_++;
    session_->OnFrame(json{
        {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}
                          .dump());
    return id;
  }
  // The reply to request `id`, running the loop until it arrives (null on
  // timeout).
  json Await(int id, int timeout_ms = test::kDefaultWaitMs) {
    json reply;
    h_.RunUntil(
        [&] {
          for (const json& m : sent_) {
            if (m.value("id", json()) == id) {
              reply = m;
              return true;
            }
          }
          return false;
        },
        timeout_ms);
    return reply;
  }
  json Call(const std::string& method, json params = json::object()) {
    return Await(Send(method, std::move(params)));
  }
  json Result(const std::string& method, json params = json::object()) {
    json r = Call(method, params);
    EXPECT_TRUE(r.contains("result")) << method << ": " << r.dump();
    return r.value("result", json());
  }
  // The notifications sent so far with `method`.
  std::vector<json> Notes(const std::string& method) {
    std::vector<json> out;
    for (const json& m : sent_) {
      if (m.value("method", "") == method) out.push_back(m["params"]);
    }
    return out;
  }
  bool AwaitNotes(const std::string& method, size_t n) {
    return h_.RunUntil([&] { return Notes(method).size() >= n; });
  }
  std::string StartOk(const std::string& workflow) {
    auto r = h_.Start({.workflow = workflow});
    EXPECT_OK(r.status());
    return r.ok() ? r->saga_id : "";
  }
  // Starts `workflow` as a task; returns the CreateTaskResult's task.
  json StartTask(const std::string& workflow) {
    json r = Call("tools/call", {{"name", "start_workflow"},
                                 {"arguments", {{"workflow", workflow}}},
                                 {"task", json::object()}});
    EXPECT_TRUE(r.contains("result")) << r.dump();
    return r["result"].value("task", json());
  }
  void CompleteHeld(json output = json::object()) {
    ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() > 0; }));
    ASSERT_TRUE(held_.Complete(ActionResult::Success(std::move(output))));
  }

  test::HeldAction held_;  // outlives the engine (declared before h_)
  test::EngineHarness h_;
  std::shared_ptr<McpSession> session_;
  std::vector<json> sent_;
  std::vector<json> related_;
  int next_id_ = 1;
};

TEST_F(McpResourcesTasksTest, TemplatesNameTheThreeUriTemplates) {
  json t = Result("resources/templates/list")["resourceTemplates"];
  std::set<std::string> uris;
  for (const json& x : t) {
    uris.insert(x["uriTemplate"].get<std::string>());
    EXPECT_EQ(x["mimeType"], "application/json");
    EXPECT_FALSE(x["title"].get<std::string>().empty());
  }
  EXPECT_EQ(uris,
            std::set<std::string>({"saga://{saga_id}", "saga://{saga_id}/log",
                                   "workflow://{name}/{version}"}));
}

TEST_F(McpResourcesTasksTest, ListPagesThroughWorkflowsThenSagasNewestFirst) {
  // 105 workflow versions and 120 sagas: three pages of at most 100.
  for (int i = 0; i < 104; ++i) {
    char name[16];
    snprintf(name, sizeof name, "w%03d", i);
    ASSERT_OK(h_.Register(Workflow(name, {{{"name", "a"}, {"action", "noop"}}}))
                  .status());
  }
  ASSERT_OK(
      h_.Register(Workflow("w000", {{{"name", "a"}, {"action", "noop"}}}, 2))
          .status());
  std::vector<std::string> ids;
  for (int i = 0; i < 120; ++i) ids.push_back(StartOk("w001"));
  std::vector<std::string> uris;
  json cursor;
  int pages = 0;
  do {
    json params = json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    json page = Result("resources/list", params);
    ASSERT_TRUE(page.contains("resources")) << page.dump();
    EXPECT_LE(page["resources"].size(), 100u);
    for (const json& r : page["resources"]) {
      uris.push_back(r["uri"].get<std::string>());
      EXPECT_EQ(r["mimeType"], "application/json");
      EXPECT_FALSE(r["name"].get<std::string>().empty());
      EXPECT_FALSE(r["title"].get<std::string>().empty());
    }
    cursor = page.value("nextCursor", json());
    ++pages;
  } while (!cursor.is_null() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(uris.size(), 225u);
  EXPECT_EQ(uris[0], "workflow://w000/1");
  EXPECT_EQ(uris[1], "workflow://w000/2");
  EXPECT_EQ(uris[104], "workflow://w103/1");
  // Sagas newest first: ids are time-ordered.
  std::sort(ids.rbegin(), ids.rend());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(uris[105 + i], "saga://" + ids[i]);
  }
  json bad = Call("resources/list", {{"cursor", "not a cursor!"}});
  EXPECT_EQ(bad["error"]["code"], jsonrpc::kInvalidParams);
  EXPECT_THAT(bad["error"]["message"].get<std::string>(),
              HasSubstr("params.cursor"));
}

TEST_F(McpResourcesTasksTest, ListOfExactlyOneFullPageOfWorkflows) {
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(h_.Register(Workflow("w" + std::to_string(1000 + i),
                                   {{{"name", "a"}, {"action", "noop"}}}))
                  .status());
  }
  json page = Result("resources/list");
  EXPECT_EQ(page["resources"].size(), 100u);
  EXPECT_FALSE(page.contains("nextCursor")) << "no sagas: nothing follows";
  const std::string id = StartOk("w1000");
  page = Result("resources/list");
  ASSERT_TRUE(page.contains("nextCursor"));
  json next = Result("resources/list", {{"cursor", page["nextCursor"]}});
  ASSERT_EQ(next["resources"].size(), 1u);
  EXPECT_EQ(next["resources"][0]["uri"], "saga://" + id);
  EXPECT_FALSE(next.contains("nextCursor"));
}

TEST_F(McpResourcesTasksTest, ReadsSagasTheirLogsAndWorkflows) {
  const json def = Workflow(
      "hello",
      {{{"name", "greet"}, {"action", "echo"}, {"params", {{"who", "x"}}}}});
  ASSERT_OK(h_.Register(def).status());
  const std::string id = StartOk("hello");
  ASSERT_OK(h_.AwaitInactive(id).status());

  json saga = Result("resources/read", {{"uri", "saga://" + id}});
  ASSERT_EQ(saga["contents"].size(), 1u);
  EXPECT_EQ(saga["contents"][0]["uri"], "saga://" + id);
  EXPECT_EQ(saga["contents"][0]["mimeType"], "application/json");
  json doc = json::parse(saga["contents"][0]["text"].get<std::string>());
  EXPECT_EQ(doc["saga_id"], id);
  EXPECT_EQ(doc["state"], "completed");
  EXPECT_EQ(doc["steps"][0]["output"], json({{"who", "x"}}));

  json log = Result("resources/read", {{"uri", "saga://" + id + "/log"}});
  doc = json::parse(log["contents"][0]["text"].get<std::string>());
  EXPECT_EQ(doc["truncated"], false);
  std::vector<std::string> types;
  for (const json& e : doc["events"])
    types.push_back(e["type"].get<std::string>());
  EXPECT_THAT(types,
              ::testing::ElementsAre("saga_started", "attempt_started",
                                     "step_succeeded", "saga_completed"));

  json wf = Result("resources/read", {{"uri", "workflow://hello/1"}});
  EXPECT_EQ(json::parse(wf["contents"][0]["text"].get<std::string>()), def);
}

TEST_F(McpResourcesTasksTest, ReadErrorsSayNotFoundOrNameTheUri) {
  ASSERT_OK(
      h_.Register(Workflow("hello", {{{"name", "a"}, {"action", "noop"}}}))
          .status());
  const std::string unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  for (const std::string& uri :
       {"saga://" + unknown, "saga://" + unknown + "/log",
        std::string("workflow://hello/2"), std::string("workflow://nope/1")}) {
    json r = Call("resources/read", {{"uri", uri}});
    EXPECT_EQ(r["error"]["code"], kResourceNotFound) << uri;
    EXPECT_EQ(r["error"]["message"], "Resource not found");
    EXPECT_EQ(r["error"]["data"], json({{"uri", uri}}));
  }
  for (const char* uri :
       {"saga://nope", "saga://", "workflow://hello", "workflow://hello/0",
        "workflow://hello/x", "workflow:///1", "file:///etc/passwd"}) {
    json r = Call("resources/read", {{"uri", uri}});
    EXPECT_EQ(r["error"]["code"], jsonrpc::kInvalidParams) << uri;
    EXPECT_THAT(r["error"]["message"].get<std::string>(),
                HasSubstr("params.uri"));
  }
  EXPECT_EQ(Call("resources/read")["error"]["code"], jsonrpc::kInvalidParams);
}

TEST_F(McpResourcesTasksTest, LongLogsShowTheFirstThousandEventsAndSayHow) {
  // 150 steps that each fail twice: 8 events per step.
  json steps = json::array();
  for (int i = 0; i < 150; ++i) {
    steps.push_back({{"name", "s" + std::to_string(i)},
                     {"action", "fail"},
                     {"params", {{"fail_attempts", 2}}},
                     {"retry",
                      {{"max_attempts", 3},
                       {"initial_backoff_ms", 1},
                       {"max_backoff_ms", 1},
                       {"jitter", 0}}}});
  }
  ASSERT_OK(h_.Register(Workflow("long", steps)).status());
  const std::string id = StartOk("long");
  auto rec = h_.AwaitInactive(id, 20000);
  ASSERT_OK(rec.status());
  ASSERT_GT(rec->last_seq, 1000u);
  json log = Result("resources/read", {{"uri", "saga://" + id + "/log"}});
  json doc = json::parse(log["contents"][0]["text"].get<std::string>());
  EXPECT_EQ(doc["events"].size(), 1000u);
  EXPECT_EQ(doc["events"].back()["seq"], 1000);
  EXPECT_EQ(doc["truncated"], true);
  EXPECT_THAT(doc["note"].get<std::string>(), HasSubstr("get_saga_log"));
}

TEST_F(McpResourcesTasksTest, SubscriptionsNotifyAfterEachChangeUntilDropped) {
  ASSERT_OK(h_.Register(Workflow("two", {{{"name", "a"}, {"action", "held"}},
                                         {{"name", "b"}, {"action", "held"}},
                                         {{"name", "c"}, {"action", "held"}}}))
                .status());
  const std::string id = StartOk("two");
  const std::string saga = "saga://" + id, log = saga + "/log";
  EXPECT_EQ(Result("resources/subscribe", {{"uri", saga}}), json::object());
  EXPECT_EQ(Result("resources/subscribe", {{"uri", log}}), json::object());
  CompleteHeld();  // a succeeds, b starts: one commit
  ASSERT_TRUE(AwaitNotes("notifications/resources/updated", 2));
  std::multiset<std::string> updated;
  for (const json& n : Notes("notifications/resources/updated")) {
    updated.insert(n["uri"].get<std::string>());
  }
  EXPECT_EQ(updated, std::multiset<std::string>({saga, log}));
  for (size_t i = 0; i < sent_.size(); ++i) {
    if (sent_[i].value("method", "") == "notifications/resources/updated") {
      EXPECT_TRUE(related_[i].is_null());
    }
  }

  EXPECT_EQ(Result("resources/unsubscribe", {{"uri", saga}}), json::object());
  CompleteHeld();
  ASSERT_TRUE(AwaitNotes("notifications/resources/updated", 3));
  EXPECT_EQ(Notes("notifications/resources/updated").back()["uri"], log);

  EXPECT_EQ(Result("resources/unsubscribe", {{"uri", log}}), json::object());
  const size_t before = sent_.size();
  CompleteHeld();
  ASSERT_OK(h_.AwaitInactive(id).status());
  h_.RunUntil([] { return false; }, 50);
  EXPECT_EQ(sent_.size(), before) << sent_.back().dump();
}

TEST_F(McpResourcesTasksTest, SubscribeErrorsAndImmutableWorkflows) {
  ASSERT_OK(
      h_.Register(Workflow("hello", {{{"name", "a"}, {"action", "noop"}}}))
          .status());
  EXPECT_EQ(Result("resources/subscribe", {{"uri", "workflow://hello/1"}}),
            json::object());
  json r = Call("resources/subscribe",
                {{"uri", "saga://01ARZ3NDEKTSV4RRFFQ69G5FAV"}});
  EXPECT_EQ(r["error"]["code"], kResourceNotFound);
  EXPECT_EQ(r["error"]["data"]["uri"], "saga://01ARZ3NDEKTSV4RRFFQ69G5FAV");
  r = Call("resources/subscribe", {{"uri", "workflow://nope/1"}});
  EXPECT_EQ(r["error"]["code"], kResourceNotFound);
  r = Call("resources/subscribe", {{"uri", "saga://x"}});
  EXPECT_EQ(r["error"]["code"], jsonrpc::kInvalidParams);
  EXPECT_EQ(Result("resources/unsubscribe", {{"uri", "workflow://hello/1"}}),
            json::object());
}

// A session follows a bounded number of sagas: past it, a subscription, a
// waiting start, a task start and tasks/result are refused (busy) and
// change nothing; following a saga it follows already is not one more.
TEST_F(McpResourcesTasksTest, ASessionFollowsAtMostItsLimitOfSagas) {
  NewSession({.max_followed_sagas = 2});
  ASSERT_OK(h_.Register(Workflow("hold", {{{"name", "a"}, {"action", "held"}}}))
                .status());
  const std::string first = StartOk("hold"), second = StartOk("hold");
  const std::string third = StartOk("hold");
  EXPECT_EQ(Result("resources/subscribe", {{"uri", "saga://" + first}}),
            json::object());
  EXPECT_EQ(Result("resources/subscribe", {{"uri", "saga://" + second}}),
            json::object());
  EXPECT_EQ(
      Result("resources/subscribe", {{"uri", "saga://" + first + "/log"}}),
      json::object());
  json r = Call("resources/subscribe", {{"uri", "saga://" + third}});
  EXPECT_EQ(r["error"]["code"], jsonrpc::kInvalidRequest) << r.dump();
  EXPECT_EQ(r["error"]["data"]["code"], "busy");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("follows 2 sagas"),
            std::string::npos);
  r = Call("tasks/result", {{"taskId", third}});
  EXPECT_EQ(r["error"]["data"]["code"], "busy") << r.dump();
  const size_t sagas = h_.engine().stats().active_by_state["running"];
  r = Call("tools/call", {{"name", "start_workflow"},
                          {"arguments", {{"workflow", "hold"}}},
                          {"task", json::object()}});
  EXPECT_EQ(r["error"]["data"]["code"], "busy") << r.dump();
  r = Call("tools/call",
           {{"name", "start_workflow"},
            {"arguments", {{"workflow", "hold"}, {"wait_ms", 1000}}}});
  EXPECT_TRUE(r["result"]["isError"].get<bool>()) << r.dump();
  EXPECT_EQ(r["result"]["structuredContent"]["error"]["code"], "busy");
  // Refused before any start: no saga more.
  EXPECT_EQ(h_.engine().stats().active_by_state["running"], sagas);
  // One unsubscribed: room for another.
  EXPECT_EQ(Result("resources/unsubscribe", {{"uri", "saga://" + second}}),
            json::object());
  EXPECT_EQ(Result("resources/subscribe", {{"uri", "saga://" + third}}),
            json::object());
}

TEST_F(McpResourcesTasksTest, ClosingTheSessionDropsItsSubscriptions) {
  ASSERT_OK(h_.Register(Workflow("two", {{{"name", "a"}, {"action", "held"}},
                                         {{"name", "b"}, {"action", "held"}}}))
                .status());
  const std::string id = StartOk("two");
  EXPECT_EQ(Result("resources/subscribe", {{"uri", "saga://" + id}}),
            json::object());
  session_->Close();
  const size_t before = sent_.size();
  CompleteHeld();
  CompleteHeld();
  ASSERT_OK(h_.AwaitInactive(id).status());
  EXPECT_EQ(sent_.size(), before);
}

TEST_F(McpResourcesTasksTest, TaskAugmentedStartRunsToItsResult) {
  ASSERT_OK(h_.Register(Workflow("two", {{{"name", "a"}, {"action", "held"}},
                                         {{"name", "b"}, {"action", "held"}}}))
                .status());
  json task = StartTask("two");
  const std::string tid = task["taskId"].get<std::string>();
  EXPECT_EQ(task["status"], "working");
  EXPECT_TRUE(task["ttl"].is_null());
  EXPECT_EQ(task["pollInterval"], 1000);
  const std::string iso =
      "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z";
  EXPECT_THAT(task["createdAt"].get<std::string>(), MatchesRegex(iso));
  EXPECT_THAT(task["lastUpdatedAt"].get<std::string>(), MatchesRegex(iso));

  // The task is the saga.
  json saga = Call("tools/call",
                   {{"name", "get_saga"}, {"arguments", {{"saga_id", tid}}}});
  EXPECT_EQ(saga["result"]["structuredContent"]["state"], "running");
  json got = Result("tasks/get", {{"taskId", tid}});
  EXPECT_EQ(got["status"], "working");
  EXPECT_THAT(got["statusMessage"].get<std::string>(), HasSubstr("'a'"));
  EXPECT_FALSE(got.contains("_meta"));

  // tasks/result blocks until the saga is over.
  const int waiting = Send("tasks/result", {{"taskId", tid}});
  CompleteHeld({{"n", 1}});
  h_.RunUntil([] { return false; }, 30);
  EXPECT_TRUE(Await(waiting, 30).is_null());
  CompleteHeld({{"n", 2}});
  json result = Await(waiting)["result"];
  EXPECT_EQ(result["isError"], false);
  EXPECT_EQ(result["structuredContent"]["saga_id"], tid);
  EXPECT_EQ(result["structuredContent"]["state"], "completed");
  EXPECT_EQ(result["structuredContent"]["saga"]["steps"][1]["output"],
            json({{"n", 2}}));
  EXPECT_EQ(result["_meta"]["io.modelcontextprotocol/related-task"],
            json({{"taskId", tid}}));
  EXPECT_EQ(json::parse(result["content"][0]["text"].get<std::string>()),
            result["structuredContent"]);

  EXPECT_EQ(Result("tasks/get", {{"taskId", tid}})["status"], "completed");
  // One status notification: working -> completed, about no request.
  ASSERT_TRUE(AwaitNotes("notifications/tasks/status", 1));
  auto notes = Notes("notifications/tasks/status");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0]["taskId"], tid);
  EXPECT_EQ(notes[0]["status"], "completed");
  EXPECT_TRUE(notes[0].contains("createdAt"));
  for (size_t i = 0; i < sent_.size(); ++i) {
    if (sent_[i].value("method", "") == "notifications/tasks/status") {
      EXPECT_TRUE(related_[i].is_null());
    }
  }
  // The result of a finished task comes at once.
  EXPECT_EQ(Result("tasks/result", {{"taskId", tid}})["isError"], false);
}

// A wait with progress, two subscriptions, a task's status and tasks/result
// on one saga: one follower, one engine watch, and each gets its own.
TEST_F(McpResourcesTasksTest, OneFollowerServesWaitsSubscriptionsAndTasks) {
  ASSERT_OK(h_.Register(Workflow("two", {{{"name", "a"}, {"action", "held"}},
                                         {{"name", "b"}, {"action", "held"}}}))
                .status());
  json r = Call("tools/call",
                {{"name", "start_workflow"},
                 {"arguments", {{"workflow", "two"}, {"idempotency_key", "k"}}},
                 {"task", json::object()}});
  const std::string tid = r["result"]["task"]["taskId"].get<std::string>();
  const std::string uri = "saga://" + tid;
  Result("resources/subscribe", {{"uri", uri}});
  Result("resources/subscribe", {{"uri", uri + "/log"}});
  const int result = Send("tasks/result", {{"taskId", tid}});
  const int wait = Send(
      "tools/call",
      {{"name", "start_workflow"},
       {"arguments",
        {{"workflow", "two"}, {"idempotency_key", "k"}, {"wait_ms", 60000}}},
       {"_meta", {{"progressToken", "p"}}}});
  // The wait joins once the store has looked its key up (off the loop):
  // only then may the steps finish, or it would see no progress.
  ASSERT_TRUE(h_.RunUntil(
      [&] { return held_.pending() == 1 && session_->waits_on(tid) == 1; }));
  EXPECT_EQ(session_->followed_sagas(), 1u);

  CompleteHeld({{"n", 1}});
  CompleteHeld({{"n", 2}});
  const json waited = Await(wait)["result"]["structuredContent"];
  EXPECT_EQ(waited["saga_id"], tid);
  EXPECT_EQ(waited["state"], "completed");
  EXPECT_EQ(waited["created"], false);
  EXPECT_EQ(waited["saga"]["steps"][1]["output"], json({{"n", 2}}));
  const json task_result = Await(result)["result"];
  EXPECT_EQ(task_result["structuredContent"]["state"], "completed");
  EXPECT_EQ(task_result["structuredContent"]["saga"], waited["saga"]);
  std::set<std::string> updated;
  for (const json& n : Notes("notifications/resources/updated")) {
    updated.insert(n["uri"].get<std::string>());
  }
  EXPECT_EQ(updated, (std::set<std::string>{uri, uri + "/log"}));
  const auto statuses = Notes("notifications/tasks/status");
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0]["status"], "completed");
  EXPECT_GE(Notes("notifications/progress").size(), 1u);

  // The subscriptions hold the follower; unsubscribing drops it.
  EXPECT_EQ(session_->followed_sagas(), 1u);
  Result("resources/unsubscribe", {{"uri", uri}});
  EXPECT_EQ(session_->followed_sagas(), 1u);
  Result("resources/unsubscribe", {{"uri", uri + "/log"}});
  EXPECT_EQ(session_->followed_sagas(), 0u);
}

TEST_F(McpResourcesTasksTest, AFailedSagaIsAFailedTaskWithAnErrorResult) {
  ASSERT_OK(
      h_.Register(Workflow("doomed", {{{"name", "reserve"},
                                       {"action", "noop"},
                                       {"compensate", {{"action", "noop"}}}},
                                      {{"name", "pay"},
                                       {"action", "fail"},
                                       {"params", {{"error", "card declined"}}},
                                       {"retry", {{"max_attempts", 1}}}}}))
          .status());
  const std::string tid = StartTask("doomed")["taskId"].get<std::string>();
  json result = Result("tasks/result", {{"taskId", tid}});
  EXPECT_EQ(result["isError"], true);
  EXPECT_EQ(result["structuredContent"]["state"], "compensated");
  EXPECT_EQ(result["structuredContent"]["error"]["code"], "saga_compensated");
  EXPECT_THAT(
      result["structuredContent"]["error"]["message"].get<std::string>(),
      HasSubstr("card declined"));
  json got = Result("tasks/get", {{"taskId", tid}});
  EXPECT_EQ(got["status"], "failed");
  EXPECT_THAT(got["statusMessage"].get<std::string>(), HasSubstr("'pay'"));
  ASSERT_TRUE(AwaitNotes("notifications/tasks/status", 1));
  EXPECT_EQ(Notes("notifications/tasks/status").back()["status"], "failed");
  json cancel = Call("tasks/cancel", {{"taskId", tid}});
  EXPECT_EQ(cancel["error"]["code"], jsonrpc::kInvalidParams);
  EXPECT_EQ(cancel["error"]["message"],
            "Cannot cancel task: already in terminal status 'failed'");
}

TEST_F(McpResourcesTasksTest, CancellingATaskCompensatesTheSaga) {
  ASSERT_OK(
      h_.Register(Workflow("trip", {{{"name", "flight"},
                                     {"action", "held"},
                                     {"compensate", {{"action", "noop"}}}},
                                    {{"name", "hotel"}, {"action", "held"}}}))
          .status());
  const std::string tid = StartTask("trip")["taskId"].get<std::string>();
  CompleteHeld();  // flight booked; hotel in flight
  ASSERT_TRUE(h_.RunUntil([&] { return held_.pending() == 1; }));
  json cancelled = Result("tasks/cancel", {{"taskId", tid}});
  EXPECT_EQ(cancelled["taskId"], tid);
  EXPECT_EQ(cancelled["status"], "cancelled");
  EXPECT_THAT(cancelled["statusMessage"].get<std::string>(),
              HasSubstr("compensates"));
  ASSERT_TRUE(AwaitNotes("notifications/tasks/status", 1));
  EXPECT_EQ(Notes("notifications/tasks/status").back()["status"], "cancelled");
  // Cancelled for good, even while the saga still winds down.
  json again = Call("tasks/cancel", {{"taskId", tid}});
  EXPECT_EQ(again["error"]["message"],
            "Cannot cancel task: already in terminal status 'cancelled'");
  const int waiting = Send("tasks/result", {{"taskId", tid}});
  CompleteHeld();  // the hotel attempt ends; flight gets compensated
  json result = Await(waiting)["result"];
  EXPECT_EQ(result["isError"], true);
  EXPECT_EQ(result["structuredContent"]["state"], "cancelled");
  EXPECT_EQ(result["structuredContent"]["saga"]["steps"][0]["status"],
            "succeeded");
  EXPECT_EQ(result["structuredContent"]["saga"]["steps"][0]["compensation"],
            "succeeded");
  EXPECT_EQ(Result("tasks/get", {{"taskId", tid}})["status"], "cancelled");
  EXPECT_EQ(Notes("notifications/tasks/status").size(), 1u);
}

TEST_F(McpResourcesTasksTest, TaskProtocolErrors) {
  ASSERT_OK(
      h_.Register(Workflow("hello", {{{"name", "a"}, {"action", "noop"}}}))
          .status());
  const std::string unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  for (const char* m : {"tasks/get", "tasks/result", "tasks/cancel"}) {
    for (const std::string& tid : {unknown, std::string("nope")}) {
      json r = Call(m, {{"taskId", tid}});
      EXPECT_EQ(r["error"]["code"], jsonrpc::kInvalidParams) << m;
      EXPECT_EQ(r["error"]["message"],
                "Failed to retrieve task: Task not found")
          << m;
    }
    EXPECT_EQ(Call(m)["error"]["code"], jsonrpc::kInvalidParams) << m;
  }
  auto call = [&](json params) { return Call("tools/call", params)["error"]; };
  // Tools whose taskSupport is absent take no task: -32601 (spec).
  EXPECT_EQ(call({{"name", "get_saga"},
                  {"arguments", {{"saga_id", unknown}}},
                  {"task", json::object()}})["code"],
            jsonrpc::kMethodNotFound);
  EXPECT_EQ(call({{"name", "no_such_tool"},
                  {"arguments", json::object()},
                  {"task", json::object()}})["code"],
            jsonrpc::kInvalidParams);
  EXPECT_EQ(call({{"name", "start_workflow"},
                  {"arguments", {{"workflow", "hello"}}},
                  {"task", 5}})["code"],
            jsonrpc::kInvalidParams);
  json missing = call({{"name", "start_workflow"},
                       {"arguments", json::object()},
                       {"task", json::object()}});
  EXPECT_EQ(missing["code"], jsonrpc::kInvalidParams);
  EXPECT_EQ(missing["message"], "arguments.workflow: required");
  json nowf = call({{"name", "start_workflow"},
                    {"arguments", {{"workflow", "nope"}}},
                    {"task", {{"ttl", 60000}}}});
  EXPECT_EQ(nowf["code"], jsonrpc::kInvalidParams);
  EXPECT_EQ(nowf["data"]["code"], "not_found");
  json badv = call({{"name", "start_workflow"},
                    {"arguments", {{"workflow", "hello"}, {"version", 0}}},
                    {"task", json::object()}});
  EXPECT_EQ(badv["message"], "arguments.version: must be an integer >= 1");
  EXPECT_EQ(Call("tasks/list", {{"cursor", "%%"}})["error"]["code"],
            jsonrpc::kInvalidParams);
}

TEST_F(McpResourcesTasksTest, TasksListPagesThroughEverySagaNewestFirst) {
  ASSERT_OK(
      h_.Register(Workflow("hello", {{{"name", "a"}, {"action", "noop"}}}))
          .status());
  std::vector<std::string> ids;
  for (int i = 0; i < 110; ++i) ids.push_back(StartOk("hello"));
  ids.push_back(StartTask("hello")["taskId"].get<std::string>());
  std::vector<std::string> listed;
  json page = Result("tasks/list");
  ASSERT_EQ(page["tasks"].size(), 100u);
  for (const json& t : page["tasks"])
    listed.push_back(t["taskId"].get<std::string>());
  ASSERT_TRUE(page["nextCursor"].is_string());
  page = Result("tasks/list", {{"cursor", page["nextCursor"]}});
  for (const json& t : page["tasks"])
    listed.push_back(t["taskId"].get<std::string>());
  EXPECT_FALSE(page.contains("nextCursor"));
  std::sort(ids.rbegin(), ids.rend());
  EXPECT_EQ(listed, ids);
}

TEST_F(McpResourcesTasksTest, TasksOutliveTheSessionAndTheServer) {
  test::TempDir dir;
  session_->Close();
  ASSERT_OK(h_.Close());
  Open(dir.path());
  // Step a waits for a file the test creates once the engine has
  // restarted: the task is still working then, however slow the restart.
  const std::string go = dir.Sub("go");
  const json wait_for_go = {
      {"argv",
       {"sh", "-c", "while [ ! -f \"$0\" ]; do sleep 0.02; done; echo '{}'",
        go}}};
  ASSERT_OK(
      h_.Register(Workflow("gated", {{{"name", "a"},
                                      {"action", "exec"},
                                      {"params", wait_for_go}},
                                     {{"name", "b"}, {"action", "noop"}}}))
          .status());
  const std::string tid = StartTask("gated")["taskId"].get<std::string>();
  session_->Close();
  session_.reset();
  ASSERT_OK(h_.Close());

  Open(dir.path());  // a new session on a restarted engine
  EXPECT_EQ(Result("tasks/get", {{"taskId", tid}})["status"], "working");
  std::ofstream(go) << "go\n";
  json result = Await(Send("tasks/result", {{"taskId", tid}}))["result"];
  EXPECT_EQ(result["structuredContent"]["state"], "completed");
  json listed = Result("tasks/list");
  ASSERT_FALSE(listed["tasks"].empty());
  EXPECT_EQ(listed["tasks"][0]["taskId"], tid);
  EXPECT_EQ(listed["tasks"][0]["status"], "completed");
  session_->Close();
  ASSERT_OK(h_.Close());
}

}  // namespace
}  // namespace cde
