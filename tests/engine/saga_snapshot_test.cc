// The snapshot each transition writes (EncodeSnapshot, straight to CBOR) is
// byte for byte the record ToRecord builds and EncodeSaga encodes, and reads
// back as the same saga: over a saga with every field set, one with none,
// and a few hundred generated ones (deterministic seeds, named on failure).
#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace cde
