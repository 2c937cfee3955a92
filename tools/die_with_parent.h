// For a child that a test or a harness forks: it is killed when the process
// that forked it ends, however that ends (a failed assertion's abort, a
// sanitizer report, SIGKILL), so that one failed test never leaves a server
// holding a port or a store behind for the tests after it.
#ifndef CDE_TOOLS_DIE_WITH_PARENT_H_
#define CDE_TOOLS_DIE_WITH_PARENT_H_

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>

namespace cde {

// Call in the child, between fork and exec (both calls are
// async-signal-safe); `parent` is getpid() taken before the fork. The
// setting survives exec. The fork must be made by a thread that lives as
// long as the child should: Linux sends the signal when that thread ends.
inline void DieWithParent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent ended before the prctl: nothing would send the signal.
  if (getppid() != parent) _exit(127);
}

}  // namespace cde

#endif  // CDE_TOOLS_DIE_WITH_PARENT_H_
