// The nesting limits that keep hostile or damaged JSON and CBOR from
// overflowing a thread's stack: how depth is counted, and that documents far
// deeper than any stack can take are measured without recursion.
#include "storage/json_depth.h"

#include <gtest/gtest.h>

#include <string>

namespace cde {
namespace {

using nlohmann::json;

std::string Nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

// `depth` arrays of one element around a 0, as CBOR.
std::string NestedCbor(size_t depth) {
  return std::string(depth, '\x81') + std::string(1, '\x00');
}

TEST(JsonDepthTest, TextDepthCountsArraysAndObjectsButNotStrings) {
  EXPECT_EQ(JsonTextDepth("1"), 0u);
  EXPECT_EQ(JsonTextDepth("[]"), 1u);
  EXPECT_EQ(JsonTextDepth(R"({"a": [1, {"b": []}], "c": {}})"), 4u);
  EXPECT_EQ(JsonTextDepth(R"(["[[[[", "\"[[[", "\\"])"), 1u);
  EXPECT_EQ(JsonTextDepth(Nested(100000)), 100000u);
  // Unbalanced closers do not wrap the count around.
  EXPECT_EQ(JsonTextDepth("]]]]["), 1u);
}

TEST(JsonDepthTest, ValueDepthOfAVeryDeepValueNeedsNoRecursion) {
  EXPECT_EQ(JsonValueDepth(json(3)), 0u);
  EXPECT_EQ(JsonValueDepth(json::parse(R"({"a": [1, {"b": []}], "c": {}})")),
            4u);
  json deep = json::parse(Nested(200000));
  EXPECT_EQ(JsonValueDepth(deep), 200000u);
}

TEST(JsonDepthTest, BoundedParseRefusesDeepAndInvalidDocuments) {
  EXPECT_EQ(ParseBoundedJson(R"({"a": [1]})"), json::parse(R"({"a": [1]})"));
  EXPECT_FALSE(ParseBoundedJson(Nested(kMaxJsonDepth)).is_discarded());
  EXPECT_TRUE(ParseBoundedJson(Nested(kMaxJsonDepth + 1)).is_discarded());
  EXPECT_TRUE(ParseBoundedJson(Nested(100000, '{', '}')).is_discarded());
  EXPECT_TRUE(ParseBoundedJson("{\"a\": ").is_discarded());
  EXPECT_TRUE(ParseBoundedJson("[1E400]").is_discarded());
}

TEST(JsonDepthTest, CborDepthMatchesTheValueEncoded) {
  for (const char* text :
       {"1", "[]", "[[1], [[2]]]", R"({"a": {"b": [1, {"c": null}]}, "d": 2})",
        R"([{"x": "[[["}, [], [[[]]]])"}) {
    const json value = json::parse(text);
    std::string cbor;
    json::to_cbor(value, cbor);
    EXPECT_EQ(CborDepth(cbor), JsonValueDepth(value)) << text;
  }
  EXPECT_EQ(CborDepth(NestedCbor(300000)), 300000u);
}

TEST(JsonDepthTest, CborDepthFollowsIndefiniteLengthsAndTags) {
  // [_ [_ 1 ] ] with break bytes, then a second top-level item.
  EXPECT_EQ(CborDepth(std::string("\x9f\x9f\x01\xff\xff\x01", 6)), 2u);
  // Chunked text string inside a map: {_ "a": (_ "b" "c") }
  EXPECT_EQ(
      CborDepth(std::string("\xbf\x61\x61\x7f\x61\x62\x61\x63\xff\xff", 10)),
      2u);
  // Tag 1 around tag 1 around [0].
  EXPECT_EQ(CborDepth(std::string("\xc1\xc1\x81\x00", 4)), 3u);
}

TEST(JsonDepthTest, CborDepthStopsWhereTheBytesStopMakingSense) {
  EXPECT_EQ(CborDepth(""), 0u);
  EXPECT_EQ(CborDepth(std::string("\x82\x81\xff", 3)), 2u);  // stray break
  EXPECT_EQ(CborDepth("\x81\x81\x5a"), 2u);  // string length cut short
  // A string claiming more bytes than there are.
  EXPECT_EQ(
      CborDepth(std::string("\x81\x7b\xff\xff\xff\xff\xff\xff\xff\xff", 10)),
      1u);
  // A map of 2^63 entries: its item count would overflow.
  EXPECT_EQ(
      CborDepth(std::string("\x81\xbb\x80\x00\x00\x00\x00\x00\x00\x00", 10)),
      1u);
  EXPECT_EQ(CborDepth(std::string("\x81\x1c", 2)), 1u);  // reserved info 28
}

TEST(JsonDepthTest, TooDeepMessageSaysHowDeepAndTheLimit) {
  EXPECT_EQ(TooDeepMessage(600),
            "arrays and objects nest 600 levels deep; at most 512 are "
            "accepted");
}

}  // namespace
}  // namespace cde
