// Crash test of map steps: a child engine runs sagas whose map step posts
// each of 1,000 items to a real HTTP server on 127.0.0.1, 32 at a time (or,
// nested, 40 groups of 25 under a map step inside the map step); we
// SIGKILL it at a random point of each map (on progress: after a random
// number of items, not after a time), restart it with the next saga, and
// finally let it settle. Then every acknowledged saga has ended completed
// (or compensated, for those whose step after the map fails), every item's
// request reached the server, no item's request was repeated more often
// than there were kills, and compensations ran exactly for the items that
// ran (all of them for a compensated saga, none for a completed one).
// Rounds: CDE_MAP_CRASH_ROUNDS (default 4); CDE_TEST_SEED replays one run's
// kill points.
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "storage/store.h"
#include "tests/test_util.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

constexpr int kItems = 1000;

int MapRounds() { return test::RoundsFromEnv("CDE_MAP_CRASH_ROUNDS", 4); }

constexpr int kLinesPerGroup = 25;  // as map_crash_child.cc

// The item an idempotency key is for: "<saga>/fan[<i>].charge/..." -> i;
// nested, "<saga>/fan[<g>].lines[<l>].charge/..." -> g * 25 + l; -1 for
// another key.
int ItemOf(const std::string& key, const std::string& saga, bool nested) {
  const std::string prefix = saga + "/fan[";
  if (key.rfind(prefix, 0) != 0) return -1;
  const int outer = std::atoi(key.c_str() + prefix.size());
  if (!nested) return outer;
  const size_t lines = key.find("].lines[", prefix.size());
  if (lines == std::string::npos) return -1;
  return outer * kLinesPerGroup + std::atoi(key.c_str() + lines + 8);
}

// Rounds of kill and restart over sagas of kItems items, flat or nested,
// then the checks the file's comment names.
void KillRestartAndCheck(bool nested) {
  const char* shape = nested ? "nested" : "flat";
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  const std::string undo_file = dir.Sub("undo.log");
  std::mt19937 rng(test::TestSeed());
  TestHttpServer server;
  server.Start();
  server.Respond("/charge", 200, R"({"ok": true})");
  const std::string url = server.url("/charge");
  struct Acked {
    std::string key;
    bool fail = false;
  };
  std::map<std::string, Acked> acked;  // saga id ->
  const int rounds = MapRounds();
  int kills = 0;
  for (int r = 0; r < rounds; ++r) {
    const bool fail = r % 2 == 1;
    const std::string key = "fanout-" + std::to_string(r);
    // Progress comes every 25 items, or every group of 25.
    const test::KillPlan plan{
        .after_progress = 1 + static_cast<int>(rng() % (kItems / 25 - 4)),
        .then_ms = static_cast<int>(rng() % 30),
        .progress_prefix = "done "};
    test::ChildRun run =
        test::RunChild({CDE_MAP_CRASH_CHILD_PATH, "run", db, undo_file, key,
                        url, std::to_string(kItems), fail ? "1" : "0", shape},
                       plan);
    ASSERT_TRUE(run.killed) << "round " << r << ": exit " << run.exit_code;
    ASSERT_FALSE(run.timed_out)
        << "round " << r << ": " << run.progress << " of "
        << plan.after_progress << " progress lines before the deadline";
    ++kills;
    std::istringstream in(run.reported);
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string word, k, saga;
      int failing = 0;
      if (words >> word >> k >> saga >> failing && word == "ack") {
        acked[saga] = {k, failing == 1};
      }
    }
  }
  test::ChildRun settle =
      test::RunChild({CDE_MAP_CRASH_CHILD_PATH, "settle", db, undo_file, "-",
                      url, "0", "0", shape},
                     {}, 300000);
  ASSERT_EQ(settle.exit_code, 0) << "the engine did not settle";
  ASSERT_EQ(acked.size(), static_cast<size_t>(rounds));

  auto opened = OpenRocksStore({.path = db, .mode = OpenMode::kReadOnly});
  ASSERT_OK(opened.status());
  Store& store = **opened;
  std::map<std::string, int> requests;  // idempotency key -> count
  for (const auto& req : server.requests()) {
    ++requests[req.header("Idempotency-Key")];
  }
  std::map<std::string, int> undos;
  std::ifstream in(undo_file);
  for (std::string line; std::getline(in, line);) ++undos[line];

  int duplicates = 0;
  for (const auto& [saga, a] : acked) {
    auto found = store.LookupIdempotency(a.key);
    ASSERT_OK(found.status()) << a.key;
    EXPECT_EQ(*found, saga);
    auto rec = store.GetSaga(saga);
    ASSERT_OK(rec.status()) << "acknowledged saga lost: " << saga;
    EXPECT_EQ(rec->state,
              a.fail ? SagaState::kCompensated : SagaState::kCompleted)
        << saga;
    std::set<int> ran, undone;
    for (const auto& [key, n] : requests) {
      const int item = ItemOf(key, saga, nested);
      if (item < 0) continue;
      ran.insert(item);
      EXPECT_LE(n - 1, kills) << key;
      duplicates += n - 1;
    }
    for (const auto& [key, n] : undos) {
      const int item = ItemOf(key, saga, nested);
      if (item < 0) continue;
      undone.insert(item);
      EXPECT_LE(n - 1, kills) << key;
    }
    EXPECT_EQ(ran.size(), static_cast<size_t>(kItems)) << saga;
    if (a.fail) {
      EXPECT_EQ(undone, ran) << saga;
    } else {
      EXPECT_TRUE(undone.empty()) << saga;
    }
    // A row per item, and nested one per group too.
    auto items = store.ReadItems(saga);
    ASSERT_OK(items.status());
    EXPECT_EQ(
        items->size(),
        static_cast<size_t>(kItems + (nested ? kItems / kLinesPerGroup : 0)))
        << saga;
  }
  std::printf(
      "map crash test (%s): %d kills, %zu sagas of %d items, %zu item "
      "requests, %d repeated\n",
      shape, kills, acked.size(), kItems, requests.size(), duplicates);
}

TEST(MapCrashTest, ItemsRunAtMostOncePerKillAndUndoExactlyWhatRan) {
  KillRestartAndCheck(false);
}

// The same with the items grouped under a map step inside the map step: 40
// groups of 25 lines, 4 groups and 8 lines of each at a time.
TEST(MapCrashTest, NestedItemsRunAtMostOncePerKillAndUndoExactlyWhatRan) {
  KillRestartAndCheck(true);
}

}  // namespace
}  // namespace cde
