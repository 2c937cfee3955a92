// A transition's rows as the commit writer reads them back: rows whose key
// and value are written in place (the engine's path) are the same bytes as
// rows built from encoded records, and several of them in one buffer keep
// their boundaries.
#include "storage/transition.h"

#include <tuple>
#include <vector>

#include "storage/cbor_writer.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using Row = std::tuple<Cf, bool, std::string, std::string>;

std::vector<Row> RowsOf(const Transition& t) {
  std::vector<Row> rows;
  t.ForEach(
      [&](Cf cf, bool is_delete, std::string_view key, std::string_view value) {
        rows.emplace_back(cf, is_delete, std::string(key), std::string(value));
      });
  return rows;
}

TEST(TransitionTest, RowsWrittenInPlaceAreTheRowsOfTheEncodedRecords) {
  SagaRecord saga = test::MakeSaga("01J0000000000000000000000A", "trip",
                                   SagaState::kRunning, 3);
  // A body large enough that the buffer grows while it is written.
  saga.body = {{"input", std::string(5000, 'x')}, {"steps", {1, 2, 3}}};
  const LogRecord first = test::MakeEvent(saga.id, 2);
  LogRecord second = test::MakeEvent(saga.id, 3);
  second.data = {{"idempotency_key", std::string(300, 'k')}};

  Transition encoded;
  encoded.AppendLog(first);
  encoded.AppendLog(second);
  encoded.PutSaga(HeadOf(saga), EncodeSaga(saga), SagaState::kRunning);
  encoded.DeleteTimer(5, saga.id, "sleep:wait");

  Transition in_place;
  in_place.AppendLog(first.saga_id, first.seq, first.time_ms, first.type,
                     first.data);
  in_place.AppendLog(second.saga_id, second.seq, second.time_ms, second.type,
                     second.data);
  in_place.PutSaga(
      HeadOf(saga), [&](CborWriter& w) { w.Json(saga.body); },
      SagaState::kRunning);
  in_place.DeleteTimer(5, saga.id, "sleep:wait");

  EXPECT_EQ(RowsOf(in_place), RowsOf(encoded));
  EXPECT_EQ(in_place.count(), 4u);
  EXPECT_EQ(in_place.ByteSize(), encoded.ByteSize());

  const std::vector<Row> rows = RowsOf(in_place);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(std::get<2>(rows[1]), LogKey(saga.id, 3));
  auto event = DecodeLog(std::get<3>(rows[1]), "log");
  ASSERT_OK(event.status());
  EXPECT_EQ(*event, second);
  auto snapshot = DecodeSaga(std::get<3>(rows[2]), "sagas");
  ASSERT_OK(snapshot.status());
  EXPECT_EQ(*snapshot, saga);
}

TEST(TransitionTest, ANewSagaInPlaceGetsItsIndexRows) {
  SagaRecord saga = test::MakeSaga("01J0000000000000000000000B", "trip",
                                   SagaState::kRunning, 1);
  Transition t;
  t.PutSaga(
      HeadOf(saga), [&](CborWriter& w) { w.Json(saga.body); }, std::nullopt);
  std::vector<Cf> cfs;
  for (const Row& row : RowsOf(t)) cfs.push_back(std::get<0>(row));
  EXPECT_EQ(cfs, (std::vector<Cf>{Cf::kSagas, Cf::kIdxWorkflow, Cf::kIdxState,
                                  Cf::kIdxWorkflowState}));
}

}  // namespace
}  // namespace cde
