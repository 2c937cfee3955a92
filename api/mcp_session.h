// McpSession: one MCP client connection (a stdio process or an HTTP
// session) speaking JSON-RPC to the engine. Transport-agnostic: frames come
// in through OnFrame and frames go out through `send`, possibly later (tool
// calls answer when the engine's commit has landed; notifications follow
// saga changes).
//
// The implementation is split by capability:
//   mcp_session.cc    lifecycle, dispatch, replies, watches, completion
//   mcp_tools.cc      tools/list and tools/call (docs/mcp.md)
//   mcp_wait.cc       start_workflow's wait, progress, cancellation, logging
//   mcp_resources.cc  resources/*, subscriptions
//   mcp_tasks.cc      tasks/* and task-augmented tools/call
//
// Thread safety: loop thread only.
#ifndef CDE_API_MCP_SESSION_H_
#define CDE_API_MCP_SESSION_H_

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth.h"
#include "api/jsonrpc.h"
#include "engine/engine.h"
#include "engine/limits.h"
#include "engine/saga_view.h"

namespace cde {

// The protocol versions this server speaks, newest first.
inline constexpr const char* kProtocolVersions[] = {"2025-11-25", "2025-06-18",
                                                    "2025-03-26"};

// The most sagas one session follows at once for what it asked (waits,
// resource subscriptions, tasks and their results): each keeps an engine
// watch, and its saga in memory. A request that would follow one more is
// refused, and changes nothing (docs/mcp.md).
inline constexpr size_t kMaxFollowedPerSession = 10000;

// The JSON-RPC error code of a request refused by the inbound rate limit
// (docs/mcp.md); its data is {"retry_after_ms": N}.
inline constexpr int kRateLimited = -32029;

// The JSON-RPC error code of a request (other than tools/call, which
// answers with an isError result) whose token lacks the scope it needs;
// its data is {"code": "forbidden", "scope": "read"}.
inline constexpr int kForbidden = -32003;

// The tool that runs `workflow`: "run_" + its name, cut to MCP's 128
// characters with a hash of the whole name when longer.
std::string WorkflowToolName(const std::string& workflow);

struct McpSessionOptions {
  // Inbound rate limits, shared by every session of the server (and the
  // admin endpoints); null = unlimited. Every request but initialize and
  // ping takes a token from the bucket of its key; notifications and
  // responses never do. REQUIRES: outlives the session.
  RateLimiters* limiter = nullptr;
  // The bucket of requests whose McpMessageContext names none:
  // "session:<Mcp-Session-Id>" over HTTP, "session:stdio" over stdio.
  std::string rate_key;
  // Whether each registered workflow is also a tool of its own,
  // run_<workflow> (docs/mcp.md), and tools/list_changed announces new
  // ones.
  bool workflow_tools = true;
  // The most sagas the session follows at once (kMaxFollowedPerSession).
  size_t max_followed_sagas = kMaxFollowedPerSession;
};

// What the transport knows about one incoming frame besides its text.
struct McpMessageContext {
  // Who sent the frame, and so which scopes its calls have. Over stdio
  // (no context given): `local`, with every scope.
  Principal caller;
  // The rate-limit bucket to charge ("" = McpSessionOptions::rate_key):
  // "token:<bearer token>" over HTTP with tokens configured, so that the
  // sessions of one token share a bucket.
  std::string rate_key;
  // The X-Correlation-ID and traceparent headers of the HTTP POST that
  // carried the frame ("" = none): start_workflow uses them when
  // params._meta has no correlation_id / traceparent.
  std::string correlation_id;
  std::string traceparent;
};

// How far a followed saga has got: what a session compares, change after
// change, to tell what happened (step statuses, the wait, the state). Not
// the saga itself, whose input and outputs may be large and would be copied
// on every change for nothing.
struct SagaProgress {
  SagaState state = SagaState::kRunning;
  std::vector<WaitView> waits;
  struct Step {
    StepStatus status;
    CompensationStatus compensation;
    friend bool operator==(const Step&, const Step&) = default;
  };
  std::vector<Step> steps;

  static SagaProgress Of(const SagaView& view);
  // Whether it waited for `w` already.
  bool Waits(const WaitView& w) const;
};

// All that one session follows of one saga, behind one engine watch: on
// each committed change the session reads what it needs from the saga in
// memory (its steps' statuses, its state) and builds the saga's full record
// only for an answer that carries it (a wait's or tasks/result's end, a
// task status that moved). Dropped when it follows nothing.
struct SagaFollower {
  uint64_t watch = 0;
  SagaState state = SagaState::kRunning;
  // The steps, for wait calls and log messages (mcp_wait.cc): followed
  // while a call waits, or for log messages while a saga started here
  // runs.
  bool steps = false;
  bool created = false;              // started by this session
  std::optional<SagaProgress> last;  // as last seen; unknown at first
  std::shared_ptr<const WorkflowDefinition> def;
  std::vector<std::string> waiters;  // keys of waiting_calls_
  // Resource subscriptions (saga://{id}, saga://{id}/log). `subscribed`
  // once the saga was found; until then the subscribe requests wait in
  // `subscribing` (request id, uri).
  bool subscribed = false;
  std::set<std::string> uris;
  std::vector<std::pair<nlohmann::json, std::string>> subscribing;
  // A task started by this session: the last status sent ("" = none).
  std::string task_status;
  // tasks/result requests waiting for the saga to be no longer active.
  std::vector<nlohmann::json> result_waiters;

  bool Idle() const {
    return !steps && !subscribed && subscribing.empty() &&
           task_status.empty() && result_waiters.empty();
  }
};

class McpSession : public std::enable_shared_from_this<McpSession> {
 public:
  // One frame for the client. `related` is the id of the request the frame
  // belongs to (its response, or a progress or log notification about it),
  // or null for a frame about no request (resource updates, task status).
  // Streamable HTTP uses both fields to pick the stream the frame goes on.
  struct OutFrame {
    std::string text;
    nlohmann::json related;
    bool is_response = false;  // a result or an error; else a notification
  };
  using Send = std::function<void(OutFrame frame)>;

  // REQUIRES: `engine` and `loop` outlive the session, or Close() is called
  // before the engine shuts down.
  static std::shared_ptr<McpSession> Create(Engine* engine, uv_loop_t* loop,
                                            Send send,
                                            McpSessionOptions options = {});
  ~McpSession();

  // The start of the message of the JSON-RPC internal error that answers a
  // request whose handler threw (a bug: logged at error level).
  static constexpr const char* kHandlerFailed = "internal error handling ";

  // Handles one incoming frame. A request over the rate limit is answered
  // with kRateLimited and has no other effect.
  void OnFrame(std::string_view text, const McpMessageContext& context = {});
  // The same for a frame the transport has decoded already.
  void OnMessage(jsonrpc::Message msg, const McpMessageContext& context = {});

  // Ends the session: drops its watches and timers; replies still pending
  // are never sent. Call before the engine shuts down. Idempotent.
  void Close();

  bool initialized() const { return initialized_; }
  // Whether a call waits on a saga or a task it started is followed: a
  // transport must not evict such a session to make room.
  bool busy() const;
  // The sagas this session follows, each behind one engine watch
  // (SagaFollower).
  size_t followed_sagas() const { return followers_.size(); }
  // The waiting calls (start_workflow with wait_ms) that follow `saga_id`:
  // a wait on an existing saga (idempotency key) joins once the store has
  // named the saga.
  size_t waits_on(const std::string& saga_id) const {
    auto it = followers_.find(saga_id);
    return it == followers_.end() ? 0 : it->second.waiters.size();
  }
  const std::string& protocol_version() const { return version_; }

  // The tool descriptions tools/list returns.
  static const nlohmann::json& Tools();
  // The scope a tool needs (auth.h); nullopt for an unknown tool.
  static std::optional<Scope> ToolScope(const std::string& tool);
  // The scope a method other than tools/call needs; nullopt for none
  // (initialize, ping, tools/list, logging, unknown methods).
  static std::optional<Scope> MethodScope(const std::string& method);
  static void AuditCall(const Principal& caller, const std::string& tool,
                        const nlohmann::json& args);

 private:
  McpSession(Engine* engine, uv_loop_t* loop, Send send,
             McpSessionOptions options)
      : engine_(engine),
        loop_(loop),
        send_(std::move(send)),
        options_(std::move(options)) {}

  // The ms until `context`'s bucket has a token again, or 0 after taking
  // one (also when there is no limiter).
  int64_t TakeToken(const McpMessageContext& context);
  void OnRequest(const nlohmann::json& id, const std::string& method,
                 const nlohmann::json& params,
                 const McpMessageContext& context);
  void OnNotification(const std::string& method, const nlohmann::json& params);

  // Replies and notifications.
  void Reply(const nlohmann::json& id, const nlohmann::json& result);
  void ReplyError(const nlohmann::json& id, int code, const std::string& msg);
  // A tool's successful result: structuredContent and its text rendering.
  void ToolResult(const nlohmann::json& id, nlohmann::json structured);
  // The same with structuredContent already serialized (compact JSON).
  void ToolResultText(const nlohmann::json& id, std::string_view structured);
  // A tool that failed: isError with a stable code.
  void ToolError(const nlohmann::json& id, const Status& status);
  static nlohmann::json ToolResultJson(nlohmann::json structured);
  static nlohmann::json ToolErrorJson(const Status& status);
  void Notify(const std::string& method, const nlohmann::json& params,
              const nlohmann::json& related = nullptr);

  // Engine watches owned by this session; Close() drops them all.
  uint64_t WatchSaga(const std::string& saga_id,
                     std::function<void(const Saga&)> on_change);
  void UnwatchSaga(uint64_t watch_id);

  // Wraps a callback so that it runs only while the session is open.
  template <typename T>
  std::function<void(T)> IfOpen(std::function<void(McpSession&, T)> fn) {
    std::weak_ptr<McpSession> weak = weak_from_this();
    return [weak, fn](T value) {
      auto self = weak.lock();
      if (self && !self->closed_) fn(*self, std::move(value));
    };
  }

  // --- tools (mcp_tools.cc) ---
  // `meta` is params._meta; `context` gives the HTTP headers a start falls
  // back on.
  void CallTool(const nlohmann::json& id, const std::string& name,
                const nlohmann::json& args, const nlohmann::json& meta,
                const McpMessageContext& context);
  // list_sagas, get_saga_log, list_dlq: store reads off the loop thread.
  void ListSagas(const nlohmann::json& id, const nlohmann::json& args);
  void GetSagaLog(const nlohmann::json& id, const nlohmann::json& args);
  void ListMapItems(const nlohmann::json& id, const nlohmann::json& args);
  void ListDlq(const nlohmann::json& id, const nlohmann::json& args);
  // completion/complete for the resource templates' variables (in
  // mcp_session.cc).
  void Complete(const nlohmann::json& id, const nlohmann::json& params);
  // Its answers: the saga ids starting with `value` (read off the loop),
  // and the workflow names.
  void CompleteSagaIds(const nlohmann::json& id, const std::string& value);
  std::vector<std::string> WorkflowNamesStartingWith(
      const std::string& value) const;

  // --- workflows as tools (mcp_workflow_tools.cc) ---
  // tools/list: Tools(), then a run_ tool per workflow when
  // options_.workflow_tools.
  nlohmann::json ListTools() const;
  // The workflow `tool` runs, or "" when it is no run_ tool.
  std::string WorkflowOfTool(const std::string& tool) const;
  // A run_ tool's call: start_workflow with the arguments as input and a
  // wait.
  void RunWorkflowTool(const nlohmann::json& id, const std::string& workflow,
                       const nlohmann::json& args, const nlohmann::json& meta,
                       const McpMessageContext& context);
  // From initialize on: notifications/tools/list_changed after each
  // registration, from whichever surface.
  void AnnounceNewWorkflows();

  // --- start, wait, progress, cancellation, logging (mcp_wait.cc) ---
  // start_workflow; with wait_ms it answers once the saga is terminal or
  // parked, or the wait runs out, sending notifications/progress per step
  // when `meta` has a progressToken.
  void StartWorkflow(const nlohmann::json& id, const nlohmann::json& args,
                     const nlohmann::json& meta,
                     const McpMessageContext& context);
  // notifications/cancelled: the waiting call is dropped, never answered.
  void CancelRequest(const nlohmann::json& params);
  // logging/setLevel.
  void SetLogLevel(const nlohmann::json& id, const nlohmann::json& params);
  // Stops every wait's timer and forgets the followed sagas (from Close()).
  void CloseWaits();

  // A start_workflow call waiting for its saga, keyed by its request id.
  struct WaitingCall {
    nlohmann::json id;
    uint64_t serial = 0;  // tells apart calls that reuse a request id
    uint64_t wait_ms = 0;
    std::string saga_id;  // empty until the start is durable
    bool created = false;
    nlohmann::json progress_token;  // null: no progress wanted
    uint64_t progress = 0;          // notifications sent so far
    uv_timer_t* timer = nullptr;    // owned; uv_close'd when the wait ends
  };
  // Follows the steps of a saga this session started or waits on
  // (SagaFollower::steps): progress and log messages, and the wait's answer.
  void Follow(const std::string& saga_id, SagaState state, bool created,
              const std::string& waiter);
  void OnFollowedChange(const std::string& saga_id, const Saga& saga);
  void OnFollowedRead(const std::string& saga_id, Result<SagaRecord> r);
  // Answers every waiter of `saga`, which reached a terminal state.
  void FinishFollow(const std::string& saga_id, const Saga& saga);
  // Ends the wait `key` (timer closed, detached from its saga); with
  // `reply`, answers it with the saga's state and timed_out.
  void EndWait(const std::string& key, bool reply);
  void OnWaitTimeout(const std::string& key, uint64_t serial);
  void Log(const std::string& level, const nlohmann::json& data,
           const nlohmann::json& related);
  std::map<std::string, WaitingCall> waiting_calls_;  // by id.dump()
  uint64_t next_wait_serial_ = 1;
  int log_level_ = 3;  // index in mcp::kLogLevels: "warning"

  // --- resources (mcp_resources.cc) ---
  // Handles resources/* requests; false if `method` is not one of them.
  bool OnResourceRequest(const nlohmann::json& id, const std::string& method,
                         const nlohmann::json& params);
  void ListResources(const nlohmann::json& id, const nlohmann::json& params);
  void ReadResource(const nlohmann::json& id, const std::string& uri);
  // The contents item ({uri, mimeType, text}) of `uri`, as resources/read
  // and embedded resources give it: InvalidArgument for a URI of no
  // resource of this server, NotFound for one that does not exist.
  void ResourceContents(const std::string& uri,
                        std::function<void(Result<nlohmann::json>)> done);

  // --- prompts (mcp_prompts.cc) ---
  // What prompts/list shows: each prompt's name, title, description and
  // arguments.
  static const nlohmann::json& Prompts();
  // Handles prompts/list and prompts/get; false for other methods.
  bool OnPromptRequest(const nlohmann::json& id, const std::string& method,
                       const nlohmann::json& params);
  // completion/complete for a prompt's argument.
  void CompletePromptArgument(const nlohmann::json& id,
                              const std::string& prompt,
                              const std::string& argument,
                              const std::string& value);
  void Subscribe(const nlohmann::json& id, const std::string& uri);
  void Unsubscribe(const nlohmann::json& id, const std::string& uri);
  // An error reply with `data` (e.g. -32002 with {uri}).
  void ReplyErrorData(const nlohmann::json& id, int code,
                      const std::string& msg, const nlohmann::json& data);

  // --- tasks (mcp_tasks.cc) ---
  // Handles tasks/* requests; false if `method` is not one of them.
  bool OnTaskRequest(const nlohmann::json& id, const std::string& method,
                     const nlohmann::json& params, const Principal& caller);
  // tools/call with params.task: answers with a CreateTaskResult.
  void CallToolAsTask(const nlohmann::json& id, const std::string& name,
                      const nlohmann::json& args, const nlohmann::json& task,
                      const nlohmann::json& meta,
                      const McpMessageContext& context);
  void GetTask(const nlohmann::json& id, const std::string& task_id);
  void GetTaskResult(const nlohmann::json& id, const std::string& task_id);
  void ListTasks(const nlohmann::json& id, const nlohmann::json& params);
  void CancelTask(const nlohmann::json& id, const std::string& task_id,
                  const Principal& caller);
  // The Task object (MCP 2025-11-25) of the saga in `r`; the task is the
  // saga, its status derived from the saga's state.
  nlohmann::json TaskJson(const SagaRecord& r) const;
  // Sends notifications/tasks/status for the task (saga) `task_id`, started
  // by this session, whenever its status moves on from `status`.
  void FollowTask(const std::string& task_id, const std::string& status);
  // After a change of a followed saga: notifications/tasks/status when the
  // task's status moved on, and the tasks/result answers once it ended.
  void OnTaskChange(const std::string& task_id, const Saga& saga);
  // tasks/result: the saga as read, answered at once unless still active.
  void OnTaskResultRead(const nlohmann::json& id, const std::string& task_id,
                        const Result<SagaRecord>& r);

  // --- following sagas (mcp_follow.cc) ---
  // The follower of `saga_id`, made (and its engine watch taken) if there
  // is none.
  SagaFollower& FollowerOf(const std::string& saga_id);
  // Busy when following `saga_id` ("" = a saga not started yet) would take
  // this session over kMaxFollowedPerSession; OK otherwise.
  Status MayFollow(const std::string& saga_id) const;
  // Drops the follower of `saga_id` (and its watch) once it follows
  // nothing.
  void DropIfIdle(const std::string& saga_id);
  // After each committed change of a followed saga: each part that
  // follows it, in turn.
  void OnSagaChange(const std::string& saga_id, const Saga& saga);
  // By saga id. Only this bookkeeping lives in the session: waits,
  // subscriptions and tasks are about sagas in the engine and the store.
  std::map<std::string, SagaFollower> followers_;

  Engine* engine_;
  uv_loop_t* loop_;
  Send send_;
  const McpSessionOptions options_;
  bool initialized_ = false;
  bool closed_ = false;
  std::string version_;
  std::set<uint64_t> watches_;
};

}  // namespace cde

#endif  // CDE_API_MCP_SESSION_H_
