// Fuzzes an MCP session (api/mcp_session.h) on a real engine over a memory
// store, fed the frames of the input.
//
// The input is read like the stdio transport reads its stream: one frame
// per line ('\n'; a trailing '\r' or ' ' trimmed; empty lines skipped), so
// one input can initialize a session and then call tools. Each input gets a
// fresh engine and session, so a crash reproduces from its input alone.
//
// Every frame is decoded with the checks of fuzz_jsonrpc, then goes to
// McpSession::OnFrame; the loop then runs until each request has its reply
// (or a short deadline, for waits), and the engine shuts down (it must:
// a shutdown that never finishes is a hang libFuzzer reports). Every frame
// the session sends must be a well-formed JSON-RPC 2.0 message: a result or
// error answering a request id of this input (or null, for a frame that
// could not be decoded), or a notification; and no reply may be the internal
// error with which the session answers a request whose handler threw.
//
// This is a separate target from fuzz_jsonrpc because a session with a
// fresh engine costs milliseconds per input, the decoder microseconds.
//
// Safety: the engine runs the built-in `exec` (commands) and `http` actions
// of any workflow registered through the session. A request whose params
// hold the string "exec" or "http" anywhere (a value or a key) is therefore
// not given to the session (it is still decoded); only a request's params
// can register a workflow, so no fuzz input can run a command or reach the
// network.
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/mcp_session.h"
#include "engine/engine.h"
#include "engine/log.h"
#include "storage/store.h"
#include "tests/fuzz/jsonrpc_frames.h"

namespace {

using namespace cde;
using namespace cde::fuzz;

// How long the loop runs for replies still pending (a start_workflow that
// waits, a task): long enough for a commit on the memory store.
constexpr auto kReplyDeadline = std::chrono::milliseconds(3);

// True if `value` holds the string "exec" or "http" (a value or a key).
bool NamesIoAction(const json& value) {
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    return s == "exec" || s == "http";
  }
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      if (key == "exec" || key == "http" || NamesIoAction(child)) return true;
    }
  }
  if (value.is_array()) {
    for (const json& child : value) {
      if (NamesIoAction(child)) return true;
    }
  }
  return false;
}

struct SentFrames {
  std::vector<json> requests;  // ids of the requests given to the session
  std::vector<json> replied;   // ids answered so far
};

// Checks one frame the session sends.
void CheckSent(const McpSession::OutFrame& out, SentFrames* sent) {
  const std::string& frame = out.text;
  const json& related = out.related;
  const json m = json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded()) Fail("session sent invalid JSON", frame);
  if (!m.is_object() || m.value("jsonrpc", json()) != "2.0") {
    Fail("session sent a frame that is not JSON-RPC 2.0", frame);
  }
  // Streamable HTTP routes frames by what the session says they are.
  if (out.is_response == m.contains("method")) {
    Fail("is_response disagrees with the frame", frame);
  }
  if (m.contains("method")) {
    if (!m["method"].is_string() || m.contains("result") ||
        m.contains("error")) {
      Fail("session sent a malformed notification", frame);
    }
    return;
  }
  if (!m.contains("id") || m.contains("result") == m.contains("error")) {
    Fail("session sent a malformed reply", frame);
  }
  const json& id = m["id"];
  if (m.contains("error")) {
    const json& e = m["error"];
    if (!e.is_object() || !e.contains("code") ||
        !e["code"].is_number_integer() || !e.contains("message") ||
        !e["message"].is_string()) {
      Fail("session sent a malformed error", frame);
    }
    // The server survives a handler that throws, but it is still a bug.
    if (e["message"].get_ref<const std::string&>().starts_with(
            McpSession::kHandlerFailed)) {
      Fail("a request handler threw", frame);
    }
  }
  if (id != related) Fail("reply's related id is not its id", frame);
  if (id.is_null()) {
    if (!m.contains("error")) Fail("a result for a null id", frame);
    return;
  }
  bool known = false;
  for (const json& r : sent->requests) known = known || r == id;
  if (!known) Fail("a reply to a request never sent", frame);
  sent->replied.push_back(id);
}

bool AllReplied(const SentFrames& sent) {
  for (const json& r : sent.requests) {
    bool found = false;
    for (const json& a : sent.replied) found = found || a == r;
    if (!found) return false;
  }
  return true;
}

// One libuv loop for the whole run; a timer keeps UV_RUN_ONCE from blocking
// for long while replies are awaited.
struct Loop {
  uv_loop_t loop;
  uv_timer_t tick;
  Loop() {
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 1, 1);
    uv_unref(reinterpret_cast<uv_handle_t*>(&tick));
  }
};

void RunSession(const std::vector<Frame>& frames) {
  static Loop* loop = [] {
    // Log lines are formatted (fuzz data reaches them) but go nowhere.
    LogOptions log;
    log.level = LogLevel::kInfo;
    log.file = "/dev/null";
    log.async = false;
    if (!ConfigureLogging(log).ok()) Fail("init", "logging");
    return new Loop();
  }();
  uv_loop_t* l = &loop->loop;

  EngineOptions options;
  options.store = NewMemoryStore();
  options.sync = false;
  options.seed = 42;
  auto engine = Engine::Open(l, std::move(options));
  if (!engine.ok()) Fail("Engine::Open", engine.status().ToString());

  SentFrames sent;
  auto session = McpSession::Create(
      engine->get(), l,
      [&sent](McpSession::OutFrame frame) { CheckSent(frame, &sent); });
  for (const Frame& frame : frames) {
    if (auto* r = std::get_if<jsonrpc::Request>(&frame.msg)) {
      // Only a request's params can register a workflow (see the top).
      if (NamesIoAction(r->params)) continue;
      sent.requests.push_back(r->id);
    }
    // An invalid request whose id could be read is answered with that id.
    if (auto* e = std::get_if<jsonrpc::DecodeError>(&frame.msg);
        e != nullptr && !e->id.is_null()) {
      sent.requests.push_back(e->id);
    }
    session->OnFrame(frame.text);
    uv_run(l, UV_RUN_NOWAIT);
  }
  uv_ref(reinterpret_cast<uv_handle_t*>(&loop->tick));
  const auto deadline = std::chrono::steady_clock::now() + kReplyDeadline;
  while (!AllReplied(sent) && std::chrono::steady_clock::now() < deadline) {
    uv_run(l, UV_RUN_ONCE);
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&loop->tick));
  session->Close();
  session.reset();
  Status s = ShutdownAndWait(l, std::move(engine).value());
  if (!s.ok()) Fail("Shutdown", s.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<Frame> frames = Frames(input);
  if (!frames.empty()) RunSession(frames);
  return 0;
}
