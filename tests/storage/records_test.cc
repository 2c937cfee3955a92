// Record and key encodings: round trips, ordering, and clear errors for
// every way a stored value can be damaged.
#include "storage/records.h"

#include "storage/keys.h"
#include "storage/saga_id.h"
#include "tests/test_util.h"

namespace cde {
namespace {

TEST(RecordsTest, EveryRecordRoundTrips) {
  SagaRecord saga = test::MakeSaga("01J0000000000000000000000A", "trip",
                                   SagaState::kCompensating, 7);
  saga.idempotency_key = "k1";
  auto s = DecodeSaga(EncodeSaga(saga), "here");
  ASSERT_OK(s.status());
  EXPECT_EQ(*s, saga);
  saga.patchable = true;  // format 8: patches of it may follow in the log
  s = DecodeSaga(EncodeSaga(saga), "here");
  ASSERT_OK(s.status());
  EXPECT_EQ(*s, saga);

  LogRecord log = test::MakeEvent("01J0000000000000000000000A", 9);
  auto l = DecodeLog(EncodeLog(log), "here");
  ASSERT_OK(l.status());
  EXPECT_EQ(*l, log);

  DlqRecord dlq{"id", "trip", 3, "compensation_failed", "refund", "HTTP 500",
                5,    123,    2};
  auto d = DecodeDlq(EncodeDlq(dlq), "here");
  ASSERT_OK(d.status());
  EXPECT_EQ(*d, dlq);

  TimerRecord timer{-20, "id", "backoff", {{"attempt", 2}}};
  auto t = DecodeTimer(EncodeTimer(timer), "here");
  ASSERT_OK(t.status());
  EXPECT_EQ(*t, timer);

  DefinitionRecord def{"trip", 4, 99, {{"steps", {1, 2}}}};
  auto df = DecodeDefinition(EncodeDefinition(def), "here");
  ASSERT_OK(df.status());
  EXPECT_EQ(*df, def);

  auto i = DecodeIdempotency(EncodeIdempotency("abc"), "here");
  ASSERT_OK(i.status());
  EXPECT_EQ(*i, "abc");
}

TEST(RecordsTest, DefinitionOriginIsStoredByNameAndOldRecordsAreClients) {
  for (DefinitionOrigin origin :
       {DefinitionOrigin::kOperator, DefinitionOrigin::kClient}) {
    DefinitionRecord def{"trip", 4, 99, {{"steps", {1}}}, origin, "ci-bot"};
    const std::string enc = EncodeDefinition(def);
    EXPECT_NE(enc.find(DefinitionOriginName(origin)), std::string::npos);
    auto df = DecodeDefinition(enc, "here");
    ASSERT_OK(df.status());
    EXPECT_EQ(*df, def);
  }
  // Written before origins were kept: the least trusted.
  std::string old(1, '\x01');
  const auto cbor = nlohmann::json::to_cbor({{"name", "trip"},
                                             {"version", 4},
                                             {"registered_ms", 99},
                                             {"definition", {{"steps", {1}}}}});
  old.append(cbor.begin(), cbor.end());
  auto df = DecodeDefinition(old, "here");
  ASSERT_OK(df.status());
  EXPECT_EQ(df->origin, DefinitionOrigin::kClient);
  EXPECT_EQ(df->registered_by, "");  // not recorded then
  std::string bad(1, '\x01');
  const auto bad_cbor =
      nlohmann::json::to_cbor({{"name", "trip"},
                               {"version", 4},
                               {"registered_ms", 99},
                               {"definition", {{"steps", {1}}}},
                               {"origin", "admin"}});
  bad.append(bad_cbor.begin(), bad_cbor.end());
  EXPECT_TRUE(DecodeDefinition(bad, "here").status().IsCorruption());
}

TEST(RecordsTest, StateIsStoredByNameNotOrdinal) {
  std::string enc = EncodeSaga(test::MakeSaga("x", "w", SagaState::kParked));
  EXPECT_NE(enc.find("parked"), std::string::npos);
}

TEST(RecordsTest, StateCodesAndNamesAreFixed) {
  // Part of the on-disk format: these must never change.
  EXPECT_EQ(static_cast<int>(SagaState::kRunning), 1);
  EXPECT_EQ(static_cast<int>(SagaState::kCancelled), 7);
  for (int code = 1; code <= 7; ++code) {
    auto state = SagaStateFromCode(static_cast<uint8_t>(code));
    ASSERT_TRUE(state.has_value());
    EXPECT_EQ(SagaStateFromName(SagaStateName(*state)), state);
  }
  EXPECT_FALSE(SagaStateFromCode(0).has_value());
  EXPECT_FALSE(SagaStateFromCode(8).has_value());
  EXPECT_FALSE(SagaStateFromName("done").has_value());
}

struct BadValue {
  std::string name;
  std::string value;
  std::string expected;  // in the message
};

class RecordsCorruptionTest : public ::testing::TestWithParam<BadValue> {};

TEST_P(RecordsCorruptionTest, DamagedSagaRecordIsCorruptionSayingWhy) {
  auto got = DecodeSaga(GetParam().value, "cf 'sagas' key 'X'");
  ASSERT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_NE(got.status().message().find("cf 'sagas' key 'X'"),
            std::string::npos);
  EXPECT_NE(got.status().message().find(GetParam().expected), std::string::npos)
      << got.status().message();
}

std::string Framed(const nlohmann::json& j) {
  std::string out(1, '\x01');
  nlohmann::json::to_cbor(j, out);
  return out;
}

// A saga record with `key` set to `value`.
std::string SagaWith(const std::string& key, const nlohmann::json& value) {
  auto j = nlohmann::json::from_cbor(
      EncodeSaga(test::MakeSaga("x", "w", SagaState::kRunning)).substr(1));
  j[key] = value;
  return Framed(j);
}

INSTANTIATE_TEST_SUITE_P(
    Values, RecordsCorruptionTest,
    ::testing::Values(
        BadValue{"Empty", "", "empty value"},
        BadValue{"NewerVersion", "\x09rest", "record version 9"},
        BadValue{"NotCbor", std::string("\x01\xff\xfe", 3), "invalid CBOR"},
        BadValue{"Truncated",
                 EncodeSaga(test::MakeSaga("x", "w", SagaState::kRunning))
                     .substr(0, 20),
                 "invalid CBOR"},
        BadValue{"NotAMap", Framed(nlohmann::json::array({1})),
                 "not a CBOR map"},
        // Nested far beyond any stack: measured before it is decoded.
        BadValue{"NestedTooDeep",
                 "\x01" + std::string(200000, '\x81') + std::string(1, '\0'),
                 "nest 200000 levels deep; at most 1024"},
        BadValue{"MissingField", Framed({{"id", "x"}}), "workflow"},
        BadValue{"WrongType", SagaWith("version", "one"),
                 "type must be number"},
        BadValue{"UnknownState", SagaWith("state", "exploded"),
                 "unknown saga state 'exploded'"},
        BadValue{"PatchableNotABoolean", SagaWith("patchable", "yes"),
                 "type must be boolean"}),
    [](const auto& info) { return info.param.name; });

TEST(KeysTest, LogKeysSortBySeqWithinASaga) {
  EXPECT_LT(LogKey("A", 255), LogKey("A", 256));
  EXPECT_LT(LogKey("A", 1), LogKey("A", uint64_t{1} << 40));
  EXPECT_EQ(LogKeySeq(LogKey("A", 77)), 77u);
  EXPECT_FALSE(LogKeySeq("short").has_value());
}

TEST(KeysTest, ItemKeysSortByIndexWithinAMapAndParseBack) {
  EXPECT_LT(ItemKey("A", "fan", 255), ItemKey("A", "fan", 256));
  EXPECT_TRUE(ItemKey("A", "fan", 3).starts_with(ItemPrefix("A")));
  EXPECT_FALSE(ItemKey("AB", "fan", 3).starts_with(ItemPrefix("A")));
  const std::string key = ItemKey("A", "book.eu.fan", 70000);
  const auto parts = ParseItemKey(key);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->saga_id, "A");
  EXPECT_EQ(parts->map_path, "book.eu.fan");
  EXPECT_EQ(parts->index, 70000u);
  EXPECT_FALSE(ParseItemKey("A").has_value());
  EXPECT_FALSE(ParseItemKey(std::string("A\0fan", 5)).has_value());
  EXPECT_FALSE(ParseItemKey(std::string("A\0\0\0\0\0\x01", 7)).has_value());
}

TEST(RecordsTest, ItemBodyRoundTrips) {
  const nlohmann::json body = {{"status", "running"}, {"steps", {1, 2}}};
  auto decoded = DecodeItem(EncodeItem(body), "here");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, body);
  EXPECT_TRUE(DecodeItem("", "here").status().IsCorruption());
}

TEST(KeysTest, TimerKeysSortByDueTimeIncludingNegative) {
  EXPECT_LT(TimerKey(-1, "z", "n"), TimerKey(0, "a", "n"));
  EXPECT_LT(TimerKey(255, "z", "n"), TimerKey(256, "a", "n"));
  EXPECT_LT(TimerKey(256, "z", "n"), TimerKeyAfter(256));
  EXPECT_LT(TimerKeyAfter(256), TimerKey(257, "", ""));
}

TEST(KeysTest, PrefixEndBoundsEveryKeyWithThePrefix) {
  EXPECT_EQ(PrefixEnd("ab"), "ac");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), "");
}

TEST(KeysTest, PrintableKeyEscapesBinary) {
  EXPECT_EQ(PrintableKey(std::string("ab\0\x01", 4)), "ab\\x00\\x01");
}

TEST(SagaIdTest, IdsAreStrictlyIncreasingEvenWithinOneMillisecond) {
  SagaIdGenerator gen(7);
  std::string prev = gen.Next(1000);
  for (int i = 0; i < 1000; ++i) {
    std::string next = gen.Next(1000 + i / 100);
    EXPECT_LT(prev, next);
    EXPECT_TRUE(IsSagaId(next)) << next;
    prev = next;
  }
  // A clock that steps back does not break the order.
  EXPECT_LT(prev, gen.Next(5));
}

TEST(SagaIdTest, TimeIsRecoverableAndFloorSortsFirst) {
  SagaIdGenerator gen(1);
  const int64_t ms = 1764200000123;
  std::string id = gen.Next(ms);
  EXPECT_EQ(SagaIdTimeMs(id), ms);
  EXPECT_LE(SagaIdFloor(ms), id);
  EXPECT_LT(id, SagaIdFloor(ms + 1));
  EXPECT_FALSE(SagaIdTimeMs("nope").has_value());
  EXPECT_FALSE(IsSagaId("01ARZ3NDEKTSV4RRFFQ69G5FAU!"));
}

}  // namespace
}  // namespace cde
