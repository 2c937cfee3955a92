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
  second.time_ms = first.time_ms;
  second.data = {{"idempotency_key", std::string(300, 'k')}};

  Transition encoded;
  encoded.TEST_PutRaw(Cf::kLog, LogKey(saga.id, 3),
                      EncodeLogRow({first, second}));
  encoded.PutSaga(HeadOf(saga), EncodeSaga(saga), SagaState::kRunning);
  encoded.DeleteTimer(5, saga.id, "sleep:wait");

  Transition in_place;
  const Transition::LogEvent events[] = {{first.type, &first.data},
                                         {second.type, &second.data}};
  in_place.AppendLogEvents(saga.id, 2, first.time_ms, events);
  in_place.PutSaga(
      HeadOf(saga), [&](CborWriter& w) { w.Json(saga.body); },
      SagaState::kRunning);
  in_place.DeleteTimer(5, saga.id, "sleep:wait");

  EXPECT_EQ(RowsOf(in_place), RowsOf(encoded));
  EXPECT_EQ(in_place.count(), 3u);
  EXPECT_EQ(in_place.ByteSize(), encoded.ByteSize());

  const std::vector<Row> rows = RowsOf(in_place);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(std::get<2>(rows[0]), LogKey(saga.id, 3));
  auto logged = DecodeLogRow(std::get<3>(rows[0]), "log");
  ASSERT_OK(logged.status());
  EXPECT_EQ(*logged, (std::vector<LogRecord>{first, second}));
  auto snapshot = DecodeSaga(std::get<3>(rows[1]), "sagas");
  ASSERT_OK(snapshot.status());
  EXPECT_EQ(*snapshot, saga);
}

TEST(TransitionTest, AOneEventRowIsTheEventsRecordAsBeforeFormat6) {
  const LogRecord event = test::MakeEvent("01J0000000000000000000000A", 9);
  Transition t;
  t.AppendLog(event);
  const std::vector<Row> rows = RowsOf(t);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0],
            Row(Cf::kLog, false, LogKey(event.saga_id, 9), EncodeLog(event)));
  auto again = DecodeLogRow(EncodeLog(event), "log");
  ASSERT_OK(again.status());
  EXPECT_EQ(*again, std::vector<LogRecord>{event});
}

TEST(TransitionTest, ALogRowOfEventsThatDoNotFollowEachOtherIsCorruption) {
  const LogRecord a = test::MakeEvent("01J0000000000000000000000A", 4);
  LogRecord gap = test::MakeEvent("01J0000000000000000000000A", 6);
  LogRecord other = test::MakeEvent("01J0000000000000000000000B", 5);
  for (const auto& events :
       {std::vector<LogRecord>{a, gap}, std::vector<LogRecord>{a, other}}) {
    auto row = DecodeLogRow(EncodeLogRow(events), "log key 6");
    EXPECT_TRUE(row.status().IsCorruption()) << row.status().ToString();
    EXPECT_NE(row.status().message().find("log key 6"), std::string::npos);
  }
  auto empty = DecodeLogRow(std::string(1, kRecordVersion) + "\x80", "k");
  EXPECT_TRUE(empty.status().IsCorruption());
}

TEST(TransitionTest, ANewSagaInPlaceGetsItsIndexRow) {
  SagaRecord saga = test::MakeSaga("01J0000000000000000000000B", "trip",
                                   SagaState::kRunning, 1);
  Transition t;
  t.PutSaga(
      HeadOf(saga), [&](CborWriter& w) { w.Json(saga.body); }, std::nullopt);
  std::vector<Cf> cfs;
  for (const Row& row : RowsOf(t)) cfs.push_back(std::get<0>(row));
  EXPECT_EQ(cfs, (std::vector<Cf>{Cf::kSagas, Cf::kIdxWorkflowState}));
}

// Format 7: one index row per saga, moved when the state changes, and no
// row at all when it does not (most transitions).
TEST(TransitionTest, OnlyAChangeOfStateMovesTheSagasIndexRow) {
  const std::string id = "01J0000000000000000000000B";
  Transition same;
  same.PutSaga(test::MakeSaga(id, "trip", SagaState::kRunning, 2),
               SagaState::kRunning);
  ASSERT_EQ(RowsOf(same).size(), 1u);
  EXPECT_EQ(std::get<0>(RowsOf(same)[0]), Cf::kSagas);

  Transition moved;
  moved.PutSaga(test::MakeSaga(id, "trip", SagaState::kCompleted, 3),
                SagaState::kRunning);
  const std::vector<Row> rows = RowsOf(moved);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(std::get<0>(rows[1]), Cf::kIdxWorkflowState);
  EXPECT_TRUE(std::get<1>(rows[1]));  // a delete
  EXPECT_EQ(std::get<2>(rows[1]),
            IdxWorkflowStatePrefix("trip", SagaState::kRunning) + id);
  EXPECT_EQ(std::get<0>(rows[2]), Cf::kIdxWorkflowState);
  EXPECT_FALSE(std::get<1>(rows[2]));
  EXPECT_EQ(std::get<2>(rows[2]),
            IdxWorkflowStatePrefix("trip", SagaState::kCompleted) + id);
}

}  // namespace
}  // namespace cde
