// The exec action with real child processes: output, failures, environment,
// stdin and cwd, spawn errors, abort, output limits and concurrency. Every
// test ends with Close() and a loop that closes cleanly.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "engine/async_action.h"
#include "tests/engine/async_action_fixture.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

using test::Sh;

// Gone, or a zombie nobody reaps (PID 1 in a container may not).
bool ProcessIsGone(pid_t pid) {
  if (kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  return state == "Z";
}

class ExecActionTest : public AsyncActionFixture {
 protected:
  ExecActionTest() : AsyncActionFixture("wf", "build", 3) {}
  void SetUp() override { Init(&NewExecAction); }
};

TEST_F(ExecActionTest, JsonOnStdoutIsTheOutput) {
  ActionResult r = Run(Sh(R"(echo '{"a": [1, 2], "b": "x"}'; echo)"));
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json::parse(R"({"a": [1, 2], "b": "x"})"));
}

TEST_F(ExecActionTest, PlainTextIsWrappedAsStdout) {
  ActionResult r = Run({{"argv", {"echo", "hello", "world"}}});
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"stdout", "hello world\n"}}));
}

TEST_F(ExecActionTest, NonZeroExitFailsWithTheStderrTail) {
  ActionResult r = Run(Sh("echo partial; echo 'disk full' >&2; exit 3"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "exit_code:3");
  EXPECT_EQ(r.error.message, "exit code 3: disk full");
}

TEST_F(ExecActionTest, OnlyTheLast2KiBOfStderrAreKept) {
  ActionResult r =
      Run(Sh("head -c 5000 /dev/zero | tr '\\0' a >&2; "
             "printf END >&2; exit 1"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "exit_code:1");
  EXPECT_LE(r.error.message.size(), 2048u + 20u);
  EXPECT_TRUE(r.error.message.ends_with("aaaEND")) << r.error.message;
}

TEST_F(ExecActionTest, DeathBySignalFailsWithItsNumber) {
  ActionResult r = Run(Sh("kill -TERM $$"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "signal:" + std::to_string(SIGTERM));
}

TEST_F(ExecActionTest, ChildSeesParamsEnvEngineEnvAndAttemptVariables) {
  ASSERT_EQ(setenv("CDE_TEST_FROM_ENGINE", "engine-value", 1), 0);
  json params =
      Sh(R"(printf '{"foo":"%s","engine":"%s","key":"%s","saga":"%s",)"
         R"("step":"%s","attempt":"%s"}' "$FOO" "$CDE_TEST_FROM_ENGINE" )"
         R"("$CDE_IDEMPOTENCY_KEY" "$CDE_SAGA_ID" "$CDE_STEP" "$CDE_ATTEMPT")");
  params["env"] = {{"FOO", "bar baz"}, {"CDE_IDEMPOTENCY_KEY", "spoofed"}};
  ActionResult r = Run(params);
  unsetenv("CDE_TEST_FROM_ENGINE");
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"foo", "bar baz"},
                            {"engine", "engine-value"},
                            {"key", "01SAGA/build/3"},
                            {"saga", "01SAGA"},
                            {"step", "build"},
                            {"attempt", "3"}}));
}

TEST_F(ExecActionTest, ProgramIsLookedUpInTheChildsPath) {
  json params = {{"argv", {"sh", "-c", "exit 0"}}};
  ActionResult r = Run(params);
  ASSERT_TRUE(r.ok) << r.error.message;
  params["env"] = {{"PATH", "/nonexistent"}};
  r = Run(params);
  EXPECT_EQ(r.error.kind, "spawn");
}

TEST_F(ExecActionTest, ChildGetsDefaultSignalDispositions) {
  // The engine ignores SIGPIPE for itself; commands must not inherit that.
  ActionResult r = Run({{"argv", {"cat", "/proc/self/status"}}});
  ASSERT_TRUE(r.ok) << r.error.message;
  const std::string status = r.output.at("stdout").get<std::string>();
  EXPECT_NE(status.find("SigIgn:\t0000000000000000"), std::string::npos);
  EXPECT_NE(status.find("SigBlk:\t0000000000000000"), std::string::npos);
}

TEST_F(ExecActionTest, StdinIsDelivered) {
  json params = {{"argv", {"cat"}}, {"stdin", "line one\nline two"}};
  ActionResult r = Run(params);
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"stdout", "line one\nline two"}}));

  params["stdin"] = {{"order", 42}};  // JSON goes in as its text
  r = Run(params);
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"order", 42}}));
}

TEST_F(ExecActionTest, StdinTheChildNeverReadsIsHarmless) {
  json params = Sh("exit 0");
  params["stdin"] = std::string(4 << 20, 'x');  // more than a pipe holds
  ActionResult r = Run(params);
  ASSERT_TRUE(r.ok) << r.error.message;
}

TEST_F(ExecActionTest, CwdIsHonoured) {
  json params = {{"argv", {"pwd"}}, {"cwd", "/"}};
  ActionResult r = Run(params);
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"stdout", "/\n"}}));
}

TEST_F(ExecActionTest, MissingProgramFailsWithSpawn) {
  ActionResult r = Run({{"argv", {"/nonexistent/cde-no-such-program"}}});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "spawn");
  EXPECT_NE(r.error.message.find("/nonexistent/cde-no-such-program"),
            std::string::npos);
  EXPECT_NE(r.error.message.find("no such file"), std::string::npos)
      << r.error.message;
}

TEST_F(ExecActionTest, BadParamsAtRunTimeFailWithParams) {
  for (const json& params : {json::object(), json({{"argv", json::array()}}),
                             json({{"argv", {"echo", 1}}}),
                             json({{"argv", {"echo"}}, {"env", {{"N", 3}}}}),
                             json({{"argv", {"echo"}}, {"cwd", 7}})}) {
    ActionResult r = Run(params);
    EXPECT_FALSE(r.ok) << params;
    EXPECT_EQ(r.error.kind, "params") << params;
  }
}

TEST_F(ExecActionTest, AbortKillsTheProcessGroupAndSuppressesDone) {
  const std::string pid_file =
      ::testing::TempDir() + "/cde-exec-abort-" + std::to_string(getpid());
  // The shell forks sleep, so the kill has to reach the grandchild too.
  // The pid is written to a temporary file, then renamed: a reader never
  // sees half of it.
  json params =
      Sh("sleep 30 & echo $! > \"$PID_FILE.tmp\"; "
         "mv \"$PID_FILE.tmp\" \"$PID_FILE\"; wait");
  params["env"] = {{"PID_FILE", pid_file}};
  std::remove(pid_file.c_str());
  bool called = false;
  const uint64_t handle =
      action_->Start(Request(params), [&](ActionResult) { called = true; });
  pid_t sleeper = 0;
  ASSERT_TRUE(RunUntil([&] {
    std::ifstream(pid_file) >> sleeper;
    return sleeper > 0;
  })) << "the shell never started sleep";
  ASSERT_EQ(action_->in_flight(), 1u);

  // The bounds below only tell "killed" from "waited for the 30 s sleep".
  const auto start = SteadyClock::now();
  action_->Abort(handle);
  EXPECT_EQ(action_->in_flight(), 0u);
  uv_run(&loop_, UV_RUN_DEFAULT);  // returns once the handles are closed
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(called);
  const auto gone_by = SteadyClock::now() + std::chrono::seconds(10);
  while (!ProcessIsGone(sleeper) && SteadyClock::now() < gone_by)
    usleep(10'000);
  EXPECT_TRUE(ProcessIsGone(sleeper));
  action_->Abort(handle);  // finished handles are ignored
  std::remove(pid_file.c_str());
}

TEST_F(ExecActionTest, CloseAbortsWhatIsInFlight) {
  bool called = false;
  for (int i = 0; i < 3; ++i) {
    action_->Start(Request({{"argv", {"sleep", "30"}}}),
                   [&](ActionResult) { called = true; });
  }
  RunUntil([] { return false; }, 50);  // the children start
  // A failure not yet delivered (that waits for the next loop turn) is
  // dropped as well.
  action_->Start(Request(json::object()), [&](ActionResult) { called = true; });
  EXPECT_EQ(action_->in_flight(), 4u);
  const auto start = SteadyClock::now();
  CloseAndDrain();  // must not wait for the 30 s sleeps
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(called);
}

TEST_F(ExecActionTest, OversizedOutputFails) {
  // `yes` never stops on its own: the action has to kill it.
  ActionResult r = Run({{"argv", {"yes"}}});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "output_too_large");
  EXPECT_NE(r.error.message.find("stdout"), std::string::npos);

  r = Run(Sh("head -c 2000000 /dev/zero >&2"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "output_too_large");
  EXPECT_NE(r.error.message.find("stderr"), std::string::npos);
}

TEST_F(ExecActionTest, InvalidUtf8OnStdoutIsReplaced) {
  ActionResult r = Run(Sh("printf 'ok \\377\\n'"));
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"stdout", "ok \xEF\xBF\xBD\n"}}));
  EXPECT_NO_THROW(r.output.dump());
}

TEST_F(ExecActionTest, StdoutNestedTooDeepIsKeptAsText) {
  // Valid JSON 100,000 levels deep: held as a value, it would overflow the
  // stack of whatever copies or logs it.
  ActionResult r =
      Run(Sh("head -c 100000 /dev/zero | tr '\\0' '['; "
             "head -c 100000 /dev/zero | tr '\\0' ']'"));
  ASSERT_TRUE(r.ok) << r.error.message;
  ASSERT_TRUE(r.output.contains("stdout"));
  EXPECT_EQ(r.output["stdout"].get<std::string>(),
            std::string(100000, '[') + std::string(100000, ']'));
}

TEST_F(ExecActionTest, ManyChildrenRunConcurrently) {
  constexpr int kChildren = 20;
  // A barrier: each child checks in, then waits until all have. Run one at
  // a time, the first would wait for the others forever (here: give up
  // after 60 s and fail). No clock decides the outcome.
  test::TempDir barrier;
  std::vector<std::optional<ActionResult>> results(kChildren);
  for (int i = 0; i < kChildren; ++i) {
    json params =
        Sh("touch \"$DIR/$I\"; n=0; "
           "while [ \"$(ls \"$DIR\" | wc -l)\" -lt $N ]; do "
           "  n=$((n+1)); [ $n -gt 1200 ] && exit 9; sleep 0.05; "
           "done; echo \"{\\\"i\\\": $I}\"");
    params["env"] = {{"I", std::to_string(i)},
                     {"N", std::to_string(kChildren)},
                     {"DIR", barrier.path()}};
    action_->Start(Request(params), [&results, i](ActionResult r) {
      results[i] = std::move(r);
    });
  }
  EXPECT_EQ(action_->in_flight(), size_t{kChildren});
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (int i = 0; i < kChildren; ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    ASSERT_TRUE(results[i]->ok) << results[i]->error.message;
    EXPECT_EQ(results[i]->output, json({{"i", i}}));
  }
}

}  // namespace
}  // namespace cde
