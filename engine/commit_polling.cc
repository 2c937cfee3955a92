#include "engine/commit_polling.h"

#include <string>

namespace cde {

Result<CommitPolling> ParseCommitPolling(std::string_view name) {
  for (CommitPolling p : {CommitPolling::kOff, CommitPolling::kAdaptive,
                          CommitPolling::kAlways}) {
    if (name == CommitPollingName(p)) return p;
  }
  return Status::InvalidArgument("unknown commit polling '" +
                                 std::string(name) +
                                 "' (off, adaptive, always)");
}

std::string_view CommitPollingName(CommitPolling polling) {
  switch (polling) {
    case CommitPolling::kOff:
      return "off";
    case CommitPolling::kAdaptive:
      return "adaptive";
    case CommitPolling::kAlways:
      return "always";
  }
  return "off";
}

}  // namespace cde
