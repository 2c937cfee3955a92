// Crash test: a child process commits saga transitions through the synced
// group-commit writer and reports each acknowledgement through a pipe; we
// SIGKILL it at a random moment, reopen the store, and check that every
// acknowledged transition is there and that the indexes agree with the
// snapshots. Iterations: CDE_CRASH_ITERATIONS (default 12); the random
// kill points replay with CDE_TEST_SEED.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "storage/store.h"
#include "tests/test_util.h"

namespace cde {
namespace {

struct Acked {
  uint64_t seq = 0;
  int state = 0;
  std::string idem;
};

int Iterations() { return test::RoundsFromEnv("CDE_CRASH_ITERATIONS", 12); }

// Runs the child until it has acknowledged its first transition, then
// `run_ms` more; SIGKILLs it and returns what it reported. Counting from
// the first acknowledgement, not from the fork, keeps the kills spread
// over the child's work in a slow (sanitizer) build too.
std::string RunAndKill(const std::string& dir, int seed, int run_ms,
                       const std::string& wal_spare_kib, bool pipeline) {
  std::vector<std::string> args = {CDE_CRASH_CHILD_PATH, dir,
                                   std::to_string(seed), wal_spare_kib};
  if (pipeline) args.push_back("pipeline");
  test::ChildRun run = test::RunChild(
      args,
      {.after_progress = 1, .then_ms = run_ms, .progress_prefix = "ack "});
  EXPECT_TRUE(run.killed) << "child ended on its own: exit " << run.exit_code;
  EXPECT_FALSE(run.timed_out) << "the child acknowledged nothing in time";
  return run.reported;
}

void Merge(const std::string& out, std::map<std::string, Acked>* acked,
           size_t* count) {
  std::istringstream in(out);
  std::string word, id, idem;
  uint64_t seq;
  int state;
  while (in >> word >> id >> seq >> state >> idem) {
    ASSERT_EQ(word, "ack");
    Acked& a = (*acked)[id];
    if (seq > a.seq) a = {seq, state, idem == "-" ? "" : idem};
    ++*count;
  }
}

// Every saga listed under a state index has that state, and the state
// indexes together list exactly the sagas that exist.
void CheckIndexesAgreeWithSnapshots(Store& store) {
  size_t by_state = 0;
  for (int code = 1; code <= 7; ++code) {
    SagaQuery q{.state = SagaStateFromCode(static_cast<uint8_t>(code)),
                .workflow = "crash",
                .limit = 500};
    SagaQuery q_state{.state = q.state, .limit = 500};
    for (SagaQuery* query : {&q, &q_state}) {
      size_t n = 0;
      for (;;) {
        auto page = store.ListSagas(*query);
        ASSERT_OK(page.status());
        for (const auto& s : page->sagas) ASSERT_EQ(s.state, *q.state) << s.id;
        n += page->sagas.size();
        if (page->next_cursor.empty()) break;
        query->cursor = page->next_cursor;
      }
      if (query == &q_state) by_state += n;
    }
  }
  size_t all = 0;
  SagaQuery q{.limit = 1000};
  for (;;) {
    auto page = store.ListSagas(q);
    ASSERT_OK(page.status());
    all += page->sagas.size();
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  EXPECT_EQ(all, by_state);
}

// Kills the child (whose WAL spare, unless `wal_spare_kib` is "0", is that
// size and written at its open; whose commit writer is pipelined if asked)
// `Iterations()` times, reopening and checking the store after each kill.
void KillReopenAndCheck(const std::string& wal_spare_kib,
                        bool pipeline = false) {
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  std::mt19937 rng(test::TestSeed());
  std::map<std::string, Acked> acked;
  size_t acks = 0;
  const int iterations = Iterations();
  for (int i = 0; i < iterations; ++i) {
    const int run_ms = static_cast<int>(rng() % 400);
    const int seed = static_cast<int>(rng() % 1000000);
    Merge(RunAndKill(db, seed, run_ms, wal_spare_kib, pipeline), &acked, &acks);

    auto opened = OpenRocksStore({.path = db});
    ASSERT_OK(opened.status());
    Store& store = **opened;
    for (const auto& [id, a] : acked) {
      auto saga = store.GetSaga(id);
      ASSERT_OK(saga.status()) << "iteration " << i << " lost saga " << id;
      ASSERT_GE(saga->last_seq, a.seq) << "lost transition of " << id;
      if (saga->last_seq == a.seq) {
        EXPECT_EQ(static_cast<int>(saga->state), a.state) << id;
      }
      auto log = store.ReadLog(id, 1, 1000);
      ASSERT_OK(log.status());
      ASSERT_EQ(log->size(), saga->last_seq) << "log of " << id;
      for (size_t k = 0; k < log->size(); ++k) {
        ASSERT_EQ((*log)[k].seq, k + 1) << id;
      }
      if (!a.idem.empty()) {
        auto found = store.LookupIdempotency(a.idem);
        ASSERT_OK(found.status());
        EXPECT_EQ(*found, id);
      }
    }
    CheckIndexesAgreeWithSnapshots(store);
    ASSERT_OK(store.Close());
  }
  ::testing::Test::RecordProperty("acknowledged_transitions",
                                  static_cast<int>(acks));
  std::printf("crash test: %d kills, %zu acknowledged transitions, %zu sagas\n",
              iterations, acks, acked.size());
  EXPECT_GT(acks, 0u) << "the child never acknowledged anything";
}

// A crash child that hangs fails its test with where it hung: the harness
// takes every thread's stack before it kills a child at its deadline.
TEST(RunChildTest, AChildStillRunningAtItsDeadlineIsKilledWithItsStacks) {
  std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
  int ptrace_scope = 0;
  scope >> ptrace_scope;
  if (geteuid() != 0 && ptrace_scope > 0) {
    GTEST_SKIP() << "gdb may not attach to a sibling process here (Yama "
                    "ptrace_scope "
                 << ptrace_scope << ", not root)";
  }
  test::ChildRun run = test::RunChild({"/bin/sleep", "600"}, {}, 300);
  EXPECT_TRUE(run.timed_out);
  EXPECT_TRUE(run.killed);
  EXPECT_NE(run.stacks.find("#0"), std::string::npos) << run.stacks;
}

TEST(StoreCrashTest, EveryAcknowledgedTransitionSurvivesSigkill) {
  KillReopenAndCheck("0");
}

// The WAL a killed process leaves was a spare larger than what a child
// writes before its kill (a few MiB): its records end in zeros. Recovery
// must read every acknowledged record and take the zeros for the log's end.
TEST(StoreCrashTest,
     EveryAcknowledgedTransitionSurvivesSigkillInAWalOverASpare) {
  KillReopenAndCheck("16384");
}

// A pipelined writer has one group syncing while the next is written: a
// kill lands between the two, or in either. Recovery must read a WAL whose
// last groups were written but never synced, in order, and lose nothing
// acknowledged.
TEST(StoreCrashTest,
     EveryAcknowledgedTransitionSurvivesSigkillDuringAPipelinedSync) {
  KillReopenAndCheck("16384", /*pipeline=*/true);
}

}  // namespace
}  // namespace cde
