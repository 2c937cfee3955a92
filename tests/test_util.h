// Helpers shared by the tests: temp dirs, Status matchers, record builders.
#ifndef CDE_TESTS_TEST_UTIL_H_
#define CDE_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/status.h"
#include "storage/store.h"

#define ASSERT_OK(expr) ASSERT_TRUE(::cde::test::IsOk(expr))
#define EXPECT_OK(expr) EXPECT_TRUE(::cde::test::IsOk(expr))

namespace cde::test {

// A workflow definition: `name`, version 1, `steps`, and the fields of
// `extra` on top.
nlohmann::json Workflow(const std::string& name, nlohmann::json steps,
                        nlohmann::json extra = nlohmann::json::object());

// exec params that run `script` under /bin/sh -c.
nlohmann::json Sh(const std::string& script);

// The W3C Trace Context specification's example traceparent, and its trace id.
inline constexpr const char* kTraceparent =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
inline constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

// Success for an OK Status; otherwise a failure that prints the Status.
inline ::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << s.ToString();
}

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A saga snapshot with plausible fields; `n` makes the body distinct.
SagaRecord MakeSaga(const std::string& id, const std::string& workflow,
                    SagaState state, uint64_t last_seq = 1);
LogRecord MakeEvent(const std::string& saga_id, uint64_t seq,
                    const std::string& type = "step_succeeded");

// How many rounds a crash test runs: the positive integer in environment
// variable `var`, else `fallback` (CI's bounded run; docs/testing.md).
int RoundsFromEnv(const char* var, int fallback);

// Transition `seq` of running saga `id` of workflow "w": its log event
// ("saga_started" for the first) and its snapshot.
Transition SagaStep(const std::string& id, uint64_t seq = 1);

// Writes one transition synchronously.
Status WriteOne(Store& store, const Transition& t, bool sync = false);

// The result of a child process run by RunChild.
struct ChildRun {
  std::string reported;    // everything the child wrote to its fd 3
  int progress = 0;        // lines of `reported` that count as progress
  bool killed = false;     // ended by our SIGKILL
  bool timed_out = false;  // killed at timeout_ms, not by the plan
  int exit_code = -1;      // when it exited on its own
  // timed_out: every thread's backtrace just before the kill (gdb), also
  // written to stderr, so that a hang in CI says where it hung.
  std::string stacks;
};

// When RunChild SIGKILLs its child: on progress, never on time alone, so
// that a slow build (sanitizers, a loaded machine) kills as late in the
// child's work as a fast one does.
struct KillPlan {
  // Kill once the child has reported this many progress lines (< 0: never
  // kill; let it exit on its own)...
  int after_progress = -1;
  // ...and this many milliseconds more.
  int then_ms = 0;
  // The lines that count as progress: those that start with this.
  std::string progress_prefix;
};

// Runs argv[0] with `argv` in a child process (fork + exec) whose fd 3 is a
// pipe to us, SIGKILLs it as `plan` says, and waits for it to end. A child
// still running after timeout_ms is killed too, with `timed_out` set.
ChildRun RunChild(const std::vector<std::string>& argv, const KillPlan& plan,
                  int timeout_ms = 120000);

// The seed of a randomized test: CDE_TEST_SEED if set, else a random one.
// Printed, so that a failure can be replayed with CDE_TEST_SEED=<seed>.
uint32_t TestSeed();

// A TCP socket connected to 127.0.0.1:port, with a 5 s receive timeout; -1
// if it could not connect. For tests that must send bytes no HTTP client
// would (curl percent-encodes paths, for one). The caller closes it.
int ConnectLoopback(int port);

// Ids that sort in creation order: MakeIds(3, 1000) -> ids at ms 1000..1002.
std::vector<std::string> MakeIds(size_t n, int64_t first_ms);

}  // namespace cde::test

#endif  // CDE_TESTS_TEST_UTIL_H_
