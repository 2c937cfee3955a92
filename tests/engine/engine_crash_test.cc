// Crash test of the engine: a child engine runs a mix of native, sleep,
// failing, exec and http steps, some compensated; we SIGKILL it at random
// moments, restart it, and finally let it settle. Then every acknowledged start
// must have ended terminal, repeated starts must have returned the same saga,
// compensations must have run exactly for the sagas that failed, every side
// effect must carry an idempotency key the log knows, and no saga may see
// more duplicate side effects than there were kills. Each round kills the
// child a random while after its first few acknowledgements: on progress,
// not on time, so a slow build kills as late in the work as a fast one.
// Rounds: CDE_ENGINE_CRASH_ROUNDS (default 6); CDE_TEST_SEED replays one
// run's kill points.
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "engine/saga.h"
#include "storage/keys.h"
#include "storage/records.h"
#include "storage/store.h"
#include "tests/test_util.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

int Rounds() { return test::RoundsFromEnv("CDE_ENGINE_CRASH_ROUNDS", 6); }

struct Acked {
  std::string saga_id;
  bool fail = false;
};

// What a kill left reads as the engine had committed it: every
// acknowledged saga's snapshot, with the patches its log holds after it
// (store format 8), ends exactly where its log ends. Returns how many were
// read through patches.
int ExpectReadableAsKilled(const std::string& db,
                           const std::map<std::string, Acked>& acked,
                           int round) {
  auto opened = OpenRocksStore({.path = db, .mode = OpenMode::kReadOnly});
  EXPECT_OK(opened.status());
  if (!opened.ok()) return 0;
  Store& store = **opened;
  std::map<std::string, uint64_t> stored_seq;  // the snapshot rows as stored
  EXPECT_OK(store.ScanRows(Cf::kSagas, [&](auto key, auto value) {
    auto rec = DecodeSaga(value, "sagas");
    if (rec.ok()) stored_seq[std::string(key)] = rec->last_seq;
    return true;
  }));
  int patched = 0;
  for (const auto& [key, a] : acked) {
    auto saga = store.GetSaga(a.saga_id);
    EXPECT_OK(saga.status()) << "round " << round << ": " << a.saga_id;
    if (!saga.ok()) continue;
    auto log = store.ReadLog(a.saga_id, saga->last_seq, 2);
    EXPECT_OK(log.status());
    if (!log.ok()) continue;
    EXPECT_EQ(log->size(), 1u)
        << "round " << round << ": saga " << a.saga_id << " is at seq "
        << saga->last_seq << " but its log does not end there";
    if (log->size() != 1) continue;
    EXPECT_EQ(log->front().seq, saga->last_seq);
    // And the patched snapshot is one the engine reads.
    EXPECT_OK(FromRecord(*saga).status()) << a.saga_id;
    if (saga->last_seq > stored_seq[a.saga_id]) ++patched;
  }
  return patched;
}

TEST(EngineCrashTest, AcknowledgedSagasFinishAndSideEffectsStayBounded) {
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  const std::string effects = dir.Sub("effects.log");
  std::mt19937 rng(test::TestSeed());
  std::map<std::string, Acked> acked;                     // key -> saga
  std::vector<std::pair<std::string, std::string>> dups;  // key, saga
  TestHttpServer server;
  server.Start();
  server.Respond("/effect", 200, R"({"ok": true})");
  const std::string url = server.url("/effect");
  const int rounds = Rounds();
  int kills = 0;
  int patched_at_kill = 0;
  for (int r = 0; r < rounds; ++r) {
    const test::KillPlan plan{.after_progress = 1 + static_cast<int>(rng() % 4),
                              .then_ms = static_cast<int>(rng() % 400),
                              .progress_prefix = "ack "};
    // Every other round commits through the pipelined writer: a store
    // written by either is resumed by the other.
    test::ChildRun run = test::RunChild(
        {CDE_ENGINE_CRASH_CHILD_PATH, r % 2 ? "run-pipelined" : "run", db,
         effects, std::to_string(r), url},
        plan);
    ASSERT_TRUE(run.killed) << "round " << r << ": exit " << run.exit_code;
    ASSERT_FALSE(run.timed_out)
        << "round " << r << ": " << run.progress << " of "
        << plan.after_progress << " acknowledgements before the deadline";
    ++kills;
    std::istringstream in(run.reported);
    std::string word, key, saga;
    while (in >> word >> key >> saga) {
      if (word == "ack") {
        int fail;
        in >> fail;
        acked[key] = {saga, fail == 1};
      } else {
        dups.emplace_back(key, saga);
      }
    }
    patched_at_kill += ExpectReadableAsKilled(db, acked, r);
  }
  test::ChildRun settle = test::RunChild(
      {CDE_ENGINE_CRASH_CHILD_PATH, "settle", db, effects, "0", url}, {},
      300000);
  ASSERT_EQ(settle.exit_code, 0) << "the engine did not settle";

  auto opened = OpenRocksStore({.path = db, .mode = OpenMode::kReadOnly});
  ASSERT_OK(opened.status());
  Store& store = **opened;

  std::set<std::string> logged_keys;  // attempt keys the logs know
  for (const auto& [key, a] : acked) {
    auto found = store.LookupIdempotency(key);
    ASSERT_OK(found.status()) << key;
    EXPECT_EQ(*found, a.saga_id) << key;
    auto saga = store.GetSaga(a.saga_id);
    ASSERT_OK(saga.status()) << "acknowledged saga lost: " << a.saga_id;
    EXPECT_EQ(saga->state,
              a.fail ? SagaState::kCompensated : SagaState::kCompleted)
        << a.saga_id;
    auto log = store.ReadLog(a.saga_id, 1, 100000);
    ASSERT_OK(log.status());
    for (const LogRecord& e : *log) {
      if (e.type == "attempt_started") {
        logged_keys.insert(e.data.at("idempotency_key").get<std::string>());
      }
    }
  }
  for (const auto& [key, saga] : dups) {
    if (acked.count(key)) {
      EXPECT_EQ(acked[key].saga_id, saga) << key;
    }
  }

  std::map<std::string, int> seen;
  std::ifstream in(effects);
  for (std::string line; std::getline(in, line);) ++seen[line];
  for (const auto& req : server.requests()) {
    ++seen[req.header("Idempotency-Key")];
  }
  int duplicates = 0;
  std::map<std::string, int> duplicates_by_saga;
  for (const auto& [key, n] : seen) {
    const std::string saga = key.substr(0, key.find('/'));
    duplicates_by_saga[saga] += n - 1;
    bool of_acked = false;
    for (const auto& [k, a] : acked) of_acked = of_acked || a.saga_id == saga;
    if (of_acked) {
      EXPECT_TRUE(logged_keys.count(key))
          << "side effect with unknown key " << key;
    }
    duplicates += n - 1;
  }
  // Compensations ran exactly for the sagas that failed.
  for (const auto& [key, a] : acked) {
    bool undone = false;
    for (const auto& [k, n] : seen) {
      undone = undone || k.rfind(a.saga_id + "/a/compensate/", 0) == 0;
    }
    EXPECT_EQ(undone, a.fail) << a.saga_id;
  }
  // A saga has at most one attempt in flight, and a kill re-runs at most
  // that one: each saga sees no more duplicates than there were kills.
  for (const auto& [saga, n] : duplicates_by_saga) {
    EXPECT_LE(n, kills) << saga;
  }
  std::printf(
      "engine crash test: %d kills, %zu acknowledged sagas, %zu side "
      "effects, %d duplicates, %d sagas read through snapshot patches after "
      "a kill\n",
      kills, acked.size(), seen.size(), duplicates, patched_at_kill);
  EXPECT_FALSE(acked.empty());
}

}  // namespace
}  // namespace cde
