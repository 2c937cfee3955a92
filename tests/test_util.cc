#include "tests/test_util.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>

#include "storage/saga_id.h"
#include "tools/die_with_parent.h"

namespace cde::test {

nlohmann::json Workflow(const std::string& name, nlohmann::json steps,
                        nlohmann::json extra) {
  nlohmann::json doc = {
      {"name", name}, {"version", 1}, {"steps", std::move(steps)}};
  if (extra.is_object()) doc.update(extra);
  return doc;
}

nlohmann::json Sh(const std::string& script) {
  return {{"argv", {"/bin/sh", "-c", script}}};
}

TempDir::TempDir() {
  std::string templ =
      (std::filesystem::temp_directory_path() / "cde-test-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) std::abort();
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

SagaRecord MakeSaga(const std::string& id, const std::string& workflow,
                    SagaState state, uint64_t last_seq) {
  SagaRecord r;
  r.id = id;
  r.workflow = workflow;
  r.version = 1;
  r.state = state;
  r.created_ms = SagaIdTimeMs(id).value_or(0);
  r.updated_ms = r.created_ms + 5;
  r.last_seq = last_seq;
  r.body = {{"input", {{"order", id}}}, {"current_step", 0}};
  return r;
}

LogRecord MakeEvent(const std::string& saga_id, uint64_t seq,
                    const std::string& type) {
  LogRecord e;
  e.saga_id = saga_id;
  e.seq = seq;
  e.time_ms = 1700000000000 + static_cast<int64_t>(seq);
  e.type = type;
  e.data = {{"step", "s" + std::to_string(seq)}};
  return e;
}

int RoundsFromEnv(const char* var, int fallback) {
  const char* env = std::getenv(var);
  return env ? std::max(1, std::atoi(env)) : fallback;
}

Transition SagaStep(const std::string& id, uint64_t seq) {
  Transition t;
  t.AppendLog(MakeEvent(id, seq, seq == 1 ? "saga_started" : "step_succeeded"));
  t.PutSaga(MakeSaga(id, "w", SagaState::kRunning, seq),
            seq == 1 ? std::nullopt : std::optional(SagaState::kRunning));
  return t;
}

Status WriteOne(Store& store, const Transition& t, bool sync) {
  const Transition* batch[] = {&t};
  return store.Write(batch, sync);
}

std::vector<std::string> MakeIds(size_t n, int64_t first_ms) {
  SagaIdGenerator gen(42);
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(gen.Next(first_ms + static_cast<int64_t>(i)));
  }
  return ids;
}

namespace {

// Every thread's backtrace of process `pid`, by gdb in batch mode (within
// 60 s); what went wrong instead when it cannot be had.
std::string ThreadStacks(pid_t pid) {
  const std::string command = "timeout 60 gdb -p " + std::to_string(pid) +
                              " -batch -ex 'thread apply all bt' 2>&1";
  FILE* out = popen(command.c_str(), "r");
  if (out == nullptr) return "(could not run gdb)";
  std::string stacks;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, out)) > 0;)
    stacks.append(buf, n);
  const int status = pclose(out);
  if (status != 0)
    stacks += "\n(gdb exited with status " + std::to_string(status) + ")";
  return stacks;
}

}  // namespace

ChildRun RunChild(const std::vector<std::string>& argv, const KillPlan& plan,
                  int timeout_ms) {
  ChildRun run;
  int fds[2];
  if (pipe(fds) != 0) return run;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    DieWithParent(parent);
    dup2(fds[1], 3);
    if (fds[0] != 3) close(fds[0]);
    if (fds[1] != 3) close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::optional<Clock::time_point> kill_at;  // set once progress is made
  bool sent_kill = false;
  size_t counted = 0;  // bytes of `reported` already scanned for lines
  auto count_progress = [&] {
    for (size_t nl;
         (nl = run.reported.find('\n', counted)) != std::string::npos;
         counted = nl + 1) {
      if (run.reported.compare(counted, plan.progress_prefix.size(),
                               plan.progress_prefix) == 0) {
        ++run.progress;
      }
    }
    if (!kill_at && plan.after_progress >= 0 &&
        run.progress >= plan.after_progress) {
      kill_at = Clock::now() + std::chrono::milliseconds(plan.then_ms);
    }
  };
  count_progress();  // after_progress == 0 kills on time alone
  char buf[65536];
  for (;;) {
    const auto now = Clock::now();
    if (!sent_kill && (now >= deadline || (kill_at && now >= *kill_at))) {
      run.timed_out = !(kill_at && now >= *kill_at);
      if (run.timed_out) {
        // A hang is a bug to find, not a failure to retry: say where the
        // child was before it goes.
        run.stacks = ThreadStacks(pid);
        std::fprintf(stderr,
                     "RunChild: %s (pid %d) still running after %d ms, "
                     "%d progress lines; its threads:\n%s\n",
                     argv[0].c_str(), static_cast<int>(pid), timeout_ms,
                     run.progress, run.stacks.c_str());
      }
      kill(pid, SIGKILL);  // our own child, by its pid
      sent_kill = true;
    }
    auto next = sent_kill ? now + std::chrono::seconds(1)
                          : std::min(deadline, kill_at.value_or(deadline));
    const int wait_ms =
        static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(next - now)
                .count()) +
        1;
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) continue;
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF: the child has ended
    run.reported.append(buf, static_cast<size_t>(n));
    count_progress();
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

uint32_t TestSeed() {
  const char* env = std::getenv("CDE_TEST_SEED");
  const uint32_t seed =
      env != nullptr ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10))
                     : std::random_device{}();
  std::printf("seed %u (replay with CDE_TEST_SEED=%u)\n", seed, seed);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace cde::test
