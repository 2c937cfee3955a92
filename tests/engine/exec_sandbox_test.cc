// The sandbox the exec children of client definitions run in: a cleared
// environment, the configured cwd, rlimits set before the program runs, and
// an unprivileged user when the server is root. Real children, real limits.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "engine/async_action.h"
#include "tests/engine/async_action_fixture.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using json = nlohmann::json;

ExecPolicy ClientsOn() {
  ExecPolicy policy;
  policy.clients = true;
  return policy;
}

using test::Sh;

// "NAME=value" lines as a map.
std::map<std::string, std::string> EnvLines(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

class ExecSandboxTest : public AsyncActionFixture {
 protected:
  ExecSandboxTest() : AsyncActionFixture("wf", "build", 1) {}

  // The sandbox `policy` resolves to on this machine, with a working
  // directory every user may write (the child may run as nobody); then
  // changed by `change`, if given, as the machine may change after a start.
  void Start(ExecPolicy policy,
             const std::function<void(ExecSandbox&)>& change = nullptr) {
    ASSERT_EQ(chmod(cwd_.path().c_str(), 01777), 0);
    policy.cwd = cwd_.path();
    auto sandbox = ResolveExecSandbox(policy);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status().ToString();
    if (change) change(*sandbox);
    Init([&](uv_loop_t* loop) {
      return NewSandboxedExecAction(loop, *sandbox);
    });
  }

  test::TempDir cwd_;
};

TEST_F(ExecSandboxTest, ChildGetsOnlyTheAllowedVariablesOfTheServer) {
  ASSERT_EQ(setenv("CDE_TEST_SERVER_SECRET", "from-the-server", 1), 0);
  ExecPolicy policy = ClientsOn();
  policy.env_allow = {"PATH"};
  Start(policy);
  ActionResult r =
      Run({{"argv", {"/usr/bin/env"}}, {"env", {{"FOO", "from-params"}}}});
  unsetenv("CDE_TEST_SERVER_SECRET");
  ASSERT_TRUE(r.ok) << r.error.message;
  const auto env = EnvLines(r.output.at("stdout").get<std::string>());
  EXPECT_EQ(env.count("CDE_TEST_SERVER_SECRET"), 0u);
  EXPECT_EQ(env.count("HOME"), 0u);
  EXPECT_EQ(env.at("PATH"), getenv("PATH"));
  EXPECT_EQ(env.at("FOO"), "from-params");
  EXPECT_EQ(env.at("CDE_SAGA_ID"), "01SAGA");
  EXPECT_EQ(env.at("CDE_STEP"), "build");
}

TEST_F(ExecSandboxTest, ChildRunsInTheConfiguredDirectory) {
  Start(ClientsOn());
  ActionResult r = Run({{"argv", {"/bin/pwd"}}, {"cwd", "/"}});
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, json({{"stdout", cwd_.path() + "\n"}}));
}

TEST_F(ExecSandboxTest, TheProgramRunsUnderTheConfiguredLimits) {
  ExecPolicy policy = ClientsOn();
  policy.limits = {.cpu_seconds = 7,
                   .address_space_mb = 512,
                   .file_size_mb = 3,
                   .processes = 40};
  Start(policy);
  // cat reads its own limits: they were set before it ran.
  ActionResult r = Run({{"argv", {"/bin/cat", "/proc/self/limits"}}});
  ASSERT_TRUE(r.ok) << r.error.message;
  const std::string limits = r.output.at("stdout").get<std::string>();
  auto row = [&](const std::string& name) {
    const size_t at = limits.find(name);
    if (at == std::string::npos) return std::string("missing");
    std::istringstream line(limits.substr(at + name.size()));
    std::string soft, hard;
    line >> soft >> hard;
    return soft + " " + hard;
  };
  EXPECT_EQ(row("Max cpu time"), "7 8");
  EXPECT_EQ(row("Max address space"), "536870912 536870912");
  EXPECT_EQ(row("Max file size"), "3145728 3145728");
  EXPECT_EQ(row("Max processes"), "40 40");
  // A core dump would hold the attempt's rendered params.
  EXPECT_EQ(row("Max core file size"), "0 0");
}

TEST_F(ExecSandboxTest, AMissingProgramIsASpawnErrorNamingIt) {
  ExecPolicy policy = ClientsOn();
  policy.limits.cpu_seconds = 5;  // so the child would run under prlimit
  Start(policy);
  ActionResult r = Run({{"argv", {"/nonexistent/convert", "x"}}});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "spawn");
  EXPECT_EQ(r.error.message, "cannot run '/nonexistent/convert' in '" +
                                 cwd_.path() + "': no such file or directory");
}

// The start refuses a limit above the server's own hard limit (see
// ResolveExecSandboxDeathTest); one lowered since the start makes prlimit
// fail before the program runs: a spawn error saying so, not the exit code
// 1 of a program that failed.
TEST_F(ExecSandboxTest, ALimitTheServerCannotGiveIsASpawnErrorNotAnExitCode) {
  constexpr rlim_t kTiB = rlim_t{1} << 40;
  rlimit fsize{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &fsize), 0);
  if (fsize.rlim_max == RLIM_INFINITY || fsize.rlim_max > kTiB) {
    // Lowered for this test process for good, unless it may raise it
    // again: no test writes a file of a terabyte.
    fsize = {std::min(fsize.rlim_cur, kTiB), kTiB};
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &fsize), 0);
  }
  ExecPolicy policy = ClientsOn();
  policy.limits.file_size_mb = 1;
  Start(policy, [&](ExecSandbox& sandbox) {
    sandbox.limits.file_size_mb = (fsize.rlim_max >> 20) * 2 + 1;
  });
  ActionResult r = Run({{"argv", {"/bin/true"}}});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "spawn");
  EXPECT_EQ(r.error.message,
            "cannot run '/bin/true' under actions.exec.limits: prlimit could "
            "not set the FSIZE resource limit: Operation not permitted");
}

// Under limits the program is found as without: by PATH for a bare name,
// from the configured cwd for a relative path.
TEST_F(ExecSandboxTest, ProgramsAreFoundUnderLimitsAsWithout) {
  ExecPolicy policy = ClientsOn();
  policy.limits.cpu_seconds = 5;
  Start(policy);
  ActionResult bare = Run({{"argv", {"echo", "found"}}});
  ASSERT_TRUE(bare.ok) << bare.error.message;
  EXPECT_EQ(bare.output, json({{"stdout", "found\n"}}));
  const std::string script = cwd_.path() + "/hello.sh";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\necho '{\"hello\": 1}'\n";
  }
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  ActionResult relative = Run({{"argv", {"./hello.sh"}}});
  ASSERT_TRUE(relative.ok) << relative.error.message;
  EXPECT_EQ(relative.output, json({{"hello", 1}}));
  ActionResult missing = Run({{"argv", {"no-such-program-here"}}});
  EXPECT_EQ(missing.error.kind, "spawn");
  // "no such file or directory", or "permission denied" when a directory
  // of PATH is closed to the child's user (execvp's rule).
  EXPECT_EQ(
      missing.error.message.rfind(
          "cannot run 'no-such-program-here' in '" + cwd_.path() + "': ", 0),
      0u)
      << missing.error.message;
}

TEST_F(ExecSandboxTest, ARunawayIsStoppedByTheCpuLimitAndSaysSo) {
  ExecPolicy policy = ClientsOn();
  policy.limits.cpu_seconds = 1;
  Start(policy);
  ActionResult r = Run(Sh("while :; do :; done"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "signal:" + std::to_string(SIGXCPU));
  EXPECT_NE(r.error.message.find("actions.exec.limits.cpu_seconds"),
            std::string::npos)
      << r.error.message;
}

TEST_F(ExecSandboxTest, AWriteBeyondTheFileSizeLimitStopsTheWriter) {
  ExecPolicy policy = ClientsOn();
  policy.limits.file_size_mb = 1;
  Start(policy);
  ActionResult r = Run(Sh("exec head -c 2097152 /dev/zero > big"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "signal:" + std::to_string(SIGXFSZ));
  EXPECT_NE(r.error.message.find("actions.exec.limits.file_size_mb"),
            std::string::npos)
      << r.error.message;
  struct stat st;
  ASSERT_EQ(stat(cwd_.Sub("big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
}

TEST_F(ExecSandboxTest, WithoutLimitsTheProgramRunsDirectly) {
  ExecPolicy policy = ClientsOn();
  policy.limits = {0, 0, 0, 0};
  Start(policy);
  ActionResult r = Run({{"argv", {"/bin/cat", "/proc/self/limits"}}});
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_NE(r.output.at("stdout").get<std::string>().find(
                "Max cpu time              unlimited"),
            std::string::npos);
}

TEST_F(ExecSandboxTest, AsRootTheChildRunsAsTheConfiguredUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to change user";
  const passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  Start(ClientsOn());  // user: nobody by default
  ActionResult r = Run(Sh("/usr/bin/id -u && /usr/bin/id -G"));
  ASSERT_TRUE(r.ok) << r.error.message;
  // No group of the server's is kept either (libuv calls setgroups).
  EXPECT_EQ(r.output,
            json({{"stdout", std::to_string(nobody->pw_uid) + "\n" +
                                 std::to_string(nobody->pw_gid) + "\n"}}))
      << r.output.dump();
}

TEST_F(ExecSandboxTest, AsRootTheProcessLimitStopsAForkBomb) {
  if (geteuid() != 0) GTEST_SKIP() << "RLIMIT_NPROC counts per user";
  ExecPolicy policy = ClientsOn();
  policy.limits.processes = 1;  // the shell itself: it may fork nothing
  Start(policy);
  ActionResult r = Run(Sh("/bin/true & wait"));
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.message.find("fork"), std::string::npos) << r.error.message;
}

TEST(ResolveExecSandboxTest, MistakesStopTheStartNamingTheSetting) {
  ExecPolicy policy = ClientsOn();
  policy.cwd = "/nonexistent/cde-sandbox";
  auto r = ResolveExecSandbox(policy);
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(),
            "actions.exec.cwd: '/nonexistent/cde-sandbox' is not a directory "
            "(an absolute path is needed)");

  policy = ClientsOn();
  policy.user = "cde-no-such-user";
  r = ResolveExecSandbox(policy);
  if (geteuid() == 0) {
    ASSERT_TRUE(r.status().IsInvalidArgument());
    EXPECT_EQ(r.status().message().rfind(
                  "actions.exec.user: no user 'cde-no-such-user'", 0),
              0u)
        << r.status().message();
    policy.user = "root";
    r = ResolveExecSandbox(policy);
    ASSERT_TRUE(r.status().IsInvalidArgument());
    EXPECT_EQ(r.status().message(),
              "actions.exec.user: 'root' is root; name an unprivileged user");
  } else {
    EXPECT_TRUE(r.ok()) << "not root: children run as the server's user";
  }

  // A limit the children could not be given: see
  // ResolveExecSandboxDeathTest.

  // With exec off for clients nothing is looked up: nothing would use it.
  policy.clients = false;
  policy.cwd = "/nonexistent/cde-sandbox";
  EXPECT_TRUE(ResolveExecSandbox(policy).ok());
}

// The children run unprivileged and inherit the server's hard limits, which
// they may lower but not raise: a limit above one stops the start, naming
// it. (In a child process: a hard limit lowered cannot be raised again.)
void ResolveUnderAHardCpuLimitOf30s() {
  const rlimit cpu{30, 30};
  if (setrlimit(RLIMIT_CPU, &cpu) != 0) _exit(2);
  ExecPolicy policy = ClientsOn();
  policy.cwd = "/";
  // 29 s, then SIGKILL at 30 s: within the server's 30. (The other limits
  // off: this machine's hard limits for them are not this test's.)
  policy.limits = {.cpu_seconds = 29,
                   .address_space_mb = 0,
                   .file_size_mb = 0,
                   .processes = 0};
  if (!ResolveExecSandbox(policy).ok()) _exit(3);
  // 30 s needs a hard limit of 31 s.
  policy.limits.cpu_seconds = 30;
  auto r = ResolveExecSandbox(policy);
  std::fprintf(stderr, "%s\n", r.status().message().c_str());
  _exit(r.status().IsInvalidArgument() ? 0 : 4);
}

TEST(ResolveExecSandboxDeathTest, ALimitAboveTheServersOwnStopsTheStart) {
  EXPECT_EXIT(
      ResolveUnderAHardCpuLimitOf30s(), ::testing::ExitedWithCode(0),
      "^actions\\.exec\\.limits\\.cpu_seconds: sets a hard limit of 31, "
      "above the server's own \\(30\\), which its exec children cannot "
      "raise; lower it, or start the server with a higher hard limit "
      "\\(`ulimit -H -t` shows it, in the shell's units\\)");
}

}  // namespace
}  // namespace cde
