// AsyncAction: a built-in action that does I/O on the engine's libuv loop:
// `exec` (a child process, uv_spawn) and `http` (libcurl's multi-socket API
// driven by the loop). Neither blocks the loop thread.
//
// Thread safety: loop thread only. `done` is called on the loop thread,
// exactly once per attempt, unless the attempt is aborted first.
#ifndef CDE_ENGINE_ASYNC_ACTION_H_
#define CDE_ENGINE_ASYNC_ACTION_H_

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/action_policy.h"
#include "engine/actions.h"
#include "engine/destination_policy.h"

namespace cde {

class AsyncAction {
 public:
  virtual ~AsyncAction() = default;

  // Starts an attempt with rendered params (validated at registration, see
  // docs/workflows.md). Returns a handle for Abort. Errors (a bad param at
  // run time, a spawn failure) are reported through `done`, never thrown.
  virtual uint64_t Start(const AttemptRequest& request, ActionDone done) = 0;

  // Abandons an attempt (its timeout passed, or the engine shuts down): the
  // process is killed (SIGKILL) or the transfer aborted, and `done` is not
  // called. Unknown or finished handles are ignored.
  virtual void Abort(uint64_t handle) = 0;

  // Attempts in flight.
  virtual size_t in_flight() const = 0;

  // Aborts everything and closes every handle; `on_closed` runs on the loop
  // once the last one is closed. No Start after Close.
  virtual void Close(std::function<void()> on_closed) = 0;
};

// exec params: argv (array of strings, required), env (object of strings,
// added to the engine's environment), cwd (string), stdin (string as is;
// other JSON as its text). The child also gets CDE_IDEMPOTENCY_KEY,
// CDE_SAGA_ID, CDE_STEP and CDE_ATTEMPT. Exit code 0 = success; output = the
// stdout parsed as JSON when it is JSON, else {"stdout": text}. A non-zero
// exit fails with kind "exit_code:N" and the last 2 KiB of stderr in the
// message; death by a signal fails with kind "signal:N"; a spawn failure
// (no such program) with kind "spawn". Output beyond 1 MiB per stream fails
// the attempt with kind "output_too_large".
std::unique_ptr<AsyncAction> NewExecAction(uv_loop_t* loop);

// How the children of client definitions run (ExecPolicy, resolved once at
// start): only the `env_allow` variables of the engine's environment (plus
// the params' env and the CDE_ variables), in `cwd`, under `limits` (set by
// util-linux's prlimit, which then execs argv), and as `uid`/`gid` when
// set. A child killed by SIGXCPU or SIGXFSZ says which limit it hit.
struct ExecSandbox {
  std::vector<std::string> env_allow;
  std::string cwd;
  ExecLimits limits;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string prlimit = "/usr/bin/prlimit";
};

// The sandbox `policy` describes on this machine: its user (only when the
// engine runs as root), cwd and prlimit looked up now, so that a mistake
// stops the start instead of every attempt. InvalidArgument naming the
// setting.
Result<ExecSandbox> ResolveExecSandbox(const ExecPolicy& policy);

std::unique_ptr<AsyncAction> NewSandboxedExecAction(uv_loop_t* loop,
                                                    ExecSandbox sandbox);

// http params: method (GET, POST, PUT, PATCH, DELETE, HEAD; default GET),
// url (string), headers (object of strings), body (string as is; other JSON
// sent as JSON with Content-Type: application/json unless a header sets it),
// timeout_ms (transfer timeout, optional). Every request carries
// Idempotency-Key: <saga>/<step>/<attempt>. A 2xx response succeeds with
// output = the body parsed as JSON, else {"status": N, "body": text}; other
// statuses fail with kind "http_NNN" (message: status and the first 2 KiB of
// the body); connection errors fail with kind "connection", transfer
// timeouts with "timeout". Response bodies beyond 1 MiB fail with kind
// "response_too_large". Redirects are not followed (a 3xx fails with its
// Location in the message). Every address connected to passes `policy`
// (destination_policy.h; `client`: for definitions registered by clients),
// else the attempt fails with kind "policy".
std::unique_ptr<AsyncAction> NewHttpAction(
    uv_loop_t* loop, std::shared_ptr<const DestinationPolicy> policy,
    bool client);

}  // namespace cde

#endif  // CDE_ENGINE_ASYNC_ACTION_H_
