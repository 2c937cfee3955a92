// How the engine's loop picks up the completions of its commits
// (EngineOptions::commit_poll, the server's engine.commit_poll).
//
//   off       the loop sleeps until the commit writer wakes it (a uv_async
//             wake-up: tens of microseconds on a virtual machine);
//   adaptive  with 8 or more commits in flight, it sleeps through most of
//             each sync and wakes a little before the sync is due to end
//             (a timer set from the syncs so far), then polls until the
//             group's completions are in: the group moves on sooner, for
//             a few hundred microseconds of polling per sync;
//   always    with 8 or more commits in flight, it polls throughout, for
//             up to 5 ms without a completion.
#ifndef CDE_ENGINE_COMMIT_POLLING_H_
#define CDE_ENGINE_COMMIT_POLLING_H_

#include <cstdint>
#include <string_view>

#include "storage/status.h"

namespace cde {

enum class CommitPolling : uint8_t { kOff, kAdaptive, kAlways };

// "off", "adaptive", "always".
Result<CommitPolling> ParseCommitPolling(std::string_view name);
std::string_view CommitPollingName(CommitPolling polling);

}  // namespace cde

#endif  // CDE_ENGINE_COMMIT_POLLING_H_
