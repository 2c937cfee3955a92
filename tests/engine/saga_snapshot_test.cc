// The snapshot each transition writes (EncodeSnapshot, straight to CBOR) is
// byte for byte the record ToRecord builds and EncodeSaga encodes, and reads
// back as the same saga: over a saga with every field set, one with none,
// and a few hundred generated ones (deterministic seeds, named on failure).
#include <gtest/gtest.h>

#include <string>

#include "engine/definition.h"
#include "engine/saga.h"
#include "storage/records.h"
#include "tests/engine/saga_generator.h"

namespace cde {
namespace {

using nlohmann::json;

void ExpectSnapshotAgrees(const Saga& s, const std::string& what) {
  SCOPED_TRACE(what);
  const std::string direct = EncodeSnapshot(s);
  EXPECT_EQ(direct, EncodeSaga(ToRecord(s)));
  auto record = DecodeSaga(direct, "sagas/" + s.id);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(*record, ToRecord(s));
  auto back = FromRecord(*record);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
}

TEST(SagaSnapshotTest, EveryFieldEncodesAsTheRecordDoes) {
  ExpectSnapshotAgrees(test::SagaWithEveryField(), "every field");
}

TEST(SagaSnapshotTest, AnEmptySagaEncodesAsTheRecordDoes) {
  Saga s;
  s.id = "01JEMPTY";
  s.input = json::object();
  ExpectSnapshotAgrees(s, "empty");
}

TEST(SagaSnapshotTest, ManyStepsNeedALongerArrayHead) {
  Saga s = test::SagaWithEveryField();
  s.steps.resize(300, s.steps[0]);  // over 23 and over 255 entries
  ExpectSnapshotAgrees(s, "300 steps");
}

TEST(SagaSnapshotTest, GeneratedSagasEncodeAsTheirRecordsDo) {
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    ExpectSnapshotAgrees(test::GeneratedSaga(seed),
                         "seed " + std::to_string(seed));
    if (HasFailure()) return;  // one seed's story, not 500
  }
}

// A commit swaps the planned saga into place (swap(Saga&, Saga&), field by
// field): every field goes both ways.
TEST(SagaTest, SwapExchangesEveryField) {
  const Saga every = test::SagaWithEveryField();
  for (const Saga& other : {Saga(), test::GeneratedSaga(7)}) {
    Saga a = every;
    Saga b = other;
    swap(a, b);
    EXPECT_EQ(a, other);
    EXPECT_EQ(b, every);
  }
}

// Formats 1 and 2 kept one wait naming its step by index: the saga's
// definition names it by path, and without it the path says the index.
TEST(SagaSnapshotTest, AWaitBeforeFormat3NamesItsStepThroughTheDefinition) {
  SagaRecord r = ToRecord(test::SagaWithEveryField());
  r.body.erase("waits");
  r.body["wait"] = {{"attempt", 2},
                    {"compensation", true},
                    {"due_ms", 1796317650000},
                    {"kind", "backoff"},
                    {"step", 1}};
  WorkflowDefinition def;
  for (const char* name : {"reserve", "charge"}) {
    def.steps.push_back({});
    def.steps.back().name = name;
  }
  auto named = FromRecord(r, &def);
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  ASSERT_EQ(named->waits.size(), 1u);
  EXPECT_EQ(named->waits[0],
            (Wait{Wait::Kind::kBackoff, "charge", true, 2, 1796317650000}));
  auto unnamed = FromRecord(r);
  ASSERT_TRUE(unnamed.ok());
  ASSERT_EQ(unnamed->waits.size(), 1u);
  EXPECT_EQ(unnamed->waits[0].path, "step[1]");
  // Written back, it is a list of waits.
  EXPECT_FALSE(ToRecord(*named).body.contains("wait"));
  EXPECT_EQ(ToRecord(*named).body["waits"][0]["path"], "charge");
}

// A map step's counters bound the loops over its items: a damaged one is
// Corruption naming the saga, never a plan that walks billions of items.
TEST(SagaSnapshotTest, MapCountersOutOfRangeAreCorruption) {
  Saga s;
  s.id = "01MAP";
  s.steps.resize(1);
  s.steps[0].status = StepStatus::kRunning;
  s.steps[0].map = {
      .began = true, .items = 10, .next = 4, .started = 4, .running = 2};
  ASSERT_TRUE(FromRecord(ToRecord(s)).ok());
  const std::vector<std::pair<const char*, json>> bad = {
      {"items", 4'000'000'000u}, {"running", 5}, {"undoing", 5},
      {"succeeded", 5},          {"next", 5},    {"started", 11}};
  for (const auto& [field, value] : bad) {
    SagaRecord r = ToRecord(s);
    r.body["steps"][0]["map"][field] = value;
    if (std::string(field) == "undoing")
      r.body["steps"][0]["map"]["undo_left"] = 0;
    auto read = FromRecord(r);
    EXPECT_TRUE(read.status().IsCorruption()) << field;
    EXPECT_NE(read.status().message().find("01MAP"), std::string::npos)
        << read.status().ToString();
  }
}

}  // namespace
}  // namespace cde
