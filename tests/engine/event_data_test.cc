// Event data: what the planner logs with each event, written straight into
// the log row. Readers decode it as JSON, so it must be the bytes
// nlohmann::json::to_cbor writes for the same object.
#include "engine/event_data.h"

#include <gtest/gtest.h>

namespace cde {
namespace {

using nlohmann::json;

std::string Cbor(const EventData& data) {
  std::string out;
  {
    CborWriter w(&out);
    data.Write(w);
  }
  return out;
}

std::string ToCbor(const json& j) {
  std::string out;
  json::to_cbor(j, out);
  return out;
}

TEST(EventDataTest, IsWrittenAsTheBytesToCborWritesForTheSameObject) {
  EventData data;
  // Set out of key order, every kind of value, a negative and a large one.
  data.Set("step", "book-hotel")
      .Set("attempt", uint32_t{3})
      .Set("compensation", false)
      .Set("error", ErrorInfo{"http_503", "upstream unavailable"})
      .Set("due_ms", int64_t{1764200000451})
      .Set("delta", -7)
      .Set("output", json{{"booking", "H-17"}, {"rooms", {1, 2}}});
  const json expected = {
      {"step", "book-hotel"},
      {"attempt", 3},
      {"compensation", false},
      {"error", {{"kind", "http_503"}, {"message", "upstream unavailable"}}},
      {"due_ms", 1764200000451},
      {"delta", -7},
      {"output", {{"booking", "H-17"}, {"rooms", {1, 2}}}}};
  EXPECT_EQ(Cbor(data), ToCbor(expected));
  EXPECT_EQ(json::from_cbor(Cbor(data)), expected);
  EXPECT_EQ(data, expected);
}

TEST(EventDataTest, NoFieldsIsAnEmptyMap) {
  EXPECT_EQ(Cbor(EventData()), ToCbor(json::object()));
  EXPECT_EQ(EventData().ToJson(), json::object());
}

TEST(EventDataTest, MoreFieldsThanUsualAreStillWrittenInKeyOrder) {
  EventData data;
  json expected = json::object();
  static const char* const kKeys[] = {"k", "j", "i", "h", "g", "f",
                                      "e", "d", "c", "b", "a"};
  int n = 0;
  for (const char* key : kKeys) {
    data.Set(key, n);
    expected[key] = n++;
  }
  EXPECT_EQ(Cbor(data), ToCbor(expected));
}

TEST(EventDataTest, SettingAFieldAgainReplacesIt) {
  EventData data;
  data.Set("reason", "first").Set("reason", "second");
  EXPECT_EQ(data, (json{{"reason", "second"}}));
  EXPECT_EQ(Cbor(data), ToCbor({{"reason", "second"}}));
}

TEST(EventDataTest, UnsignedStaysUnsignedAsJson) {
  // Log lines take `attempt` only as an unsigned number.
  EventData data;
  data.Set("attempt", uint32_t{2}).Set("item", size_t{5}).Set("delta", -1);
  EXPECT_TRUE(data["attempt"].is_number_unsigned());
  EXPECT_TRUE(data["item"].is_number_unsigned());
  EXPECT_TRUE(data["delta"].is_number_integer());
  EXPECT_FALSE(data["delta"].is_number_unsigned());
  EXPECT_TRUE(data["missing"].is_null());
}

TEST(EventDataTest, WithoutDropsTheNamedFieldsOnly) {
  EventData data;
  data.Set("step", "pay").Set("output", json{{"id", 1}}).Set("attempt", 1u);
  const EventData kept = data.Without({"output", "input"});
  EXPECT_EQ(kept, (json{{"step", "pay"}, {"attempt", 1}}));
  EXPECT_FALSE(kept.contains("output"));
  EXPECT_TRUE(data.contains("output"));
}

}  // namespace
}  // namespace cde
