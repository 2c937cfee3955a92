// CborWriter::Json writes what nlohmann::json::to_cbor writes, byte for
// byte: stored records written by either must read back the same, and a
// snapshot's bytes must not depend on which path wrote its body.
#include "storage/cbor_writer.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;

std::string Ours(const json& v) {
  std::string out;
  CborWriter(&out, 7, 1).Field("v", v);
  return out;
}

std::string Theirs(const json& v) {
  std::string out;
  out.push_back(7);
  out += Ours(json(nullptr)).substr(1, 3);  // the map head and "v"
  json::to_cbor(v, out);
  return out;
}

TEST(CborWriterTest, JsonAtEveryLengthAndValueBoundaryIsToCborsBytes) {
  std::vector<json> values = {nullptr,
                              true,
                              false,
                              json::array(),
                              json::object(),
                              "",
                              std::string(1, '\0')};
  for (uint64_t edge :
       std::vector<uint64_t>{0ull, 23ull, 24ull, 255ull, 256ull, 65535ull,
                             65536ull, 4294967295ull, 4294967296ull,
                             std::numeric_limits<uint64_t>::max()}) {
    values.push_back(edge);
    if (edge <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      values.push_back(static_cast<int64_t>(edge));
      values.push_back(-static_cast<int64_t>(edge));
      values.push_back(-static_cast<int64_t>(edge) - 1);
    }
  }
  values.push_back(std::numeric_limits<int64_t>::min());
  for (double d : {0.0, -0.0, 0.5, 0.1, 1e300, -2.5e-310,
                   std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN()}) {
    values.push_back(d);
  }
  for (size_t n : {23u, 24u, 255u, 256u, 65535u, 65536u}) {
    values.push_back(std::string(n, 'x'));
    values.push_back(json(std::vector<int>(n, 1)));
    json object = json::object();
    for (size_t i = 0; i < n && i < 300; ++i)
      object["k" + std::to_string(i)] = i;
    values.push_back(object);
  }
  values.push_back(json::binary({1, 2, 3}));
  values.push_back(json::binary({1, 2, 3}, 42));
  values.push_back({{"nested", {{"a", {1, "two", 3.5, nullptr}}, {"é", "ü"}}}});
  for (const json& v : values) {
    EXPECT_EQ(Ours(v), Theirs(v)) << v.dump();
  }
}

// A random JSON value of at most `depth` levels.
json RandomJson(std::mt19937_64& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 0 ? 9 : 7));
  switch (kind) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return rng() >> (rng() % 64);
    case 3:
      return -static_cast<int64_t>(rng() >> (1 + rng() % 63));
    case 4:
      return static_cast<double>(rng() % 100000) / 8.0;
    case 5:
      return std::string(rng() % 40, static_cast<char>('a' + rng() % 26));
    case 6:
      return static_cast<int64_t>(rng() % 300);
    case 7: {
      json a = json::array();
      for (size_t i = rng() % 30; i > 0; --i)
        a.push_back(RandomJson(rng, depth - 1));
      return a;
    }
    default: {
      json o = json::object();
      for (size_t i = rng() % 30; i > 0; --i) {
        o["k" + std::to_string(rng() % 1000)] = RandomJson(rng, depth - 1);
      }
      return o;
    }
  }
}

TEST(CborWriterTest, RandomJsonIsToCborsBytesAndReadsBack) {
  std::mt19937_64 rng(20261205);
  for (int i = 0; i < 2000; ++i) {
    const json v = RandomJson(rng, 4);
    const std::string ours = Ours(v);
    ASSERT_EQ(ours, Theirs(v)) << v.dump();
    const json back = json::from_cbor(ours.substr(1));
    EXPECT_EQ(back.at("v"), v);
  }
}

// The writer stages bytes and appends them in stages: a map opened before
// a stage reached `out` and closed after still gets its size, and text of
// every length around a stage's size lands whole and in order.
TEST(CborWriterTest, MapsAndTextSpanningStagesAreWrittenWhole) {
  for (size_t filler : {0u, 100u, 200u, 250u, 255u, 256u, 257u, 300u, 700u}) {
    std::string out = "prefix";
    {
      CborWriter w(&out);
      const size_t outer = w.OpenMap();
      w.Text("a");
      w.Text(std::string(filler, 'x'));
      w.Text("b");
      const size_t inner = w.OpenMap();
      w.Text("c");
      w.Uint(filler);
      w.CloseMap(inner, 1);
      for (int i = 0; i < 20; ++i) {
        w.Text("k" + std::to_string(i));
        w.Int(-i * 1000003);
      }
      w.CloseMap(outer, 22);
    }
    json expected = {{"a", std::string(filler, 'x')}, {"b", {{"c", filler}}}};
    for (int i = 0; i < 20; ++i)
      expected["k" + std::to_string(i)] = -i * 1000003;
    ASSERT_EQ(out.substr(0, 6), "prefix") << filler;
    EXPECT_EQ(json::from_cbor(out.substr(6)), expected) << filler;
  }
  // An empty view's data may be null: nothing is copied from it.
  std::string out;
  CborWriter(&out, 7, 1).Field("e", std::string_view());
  EXPECT_EQ(json::from_cbor(out.substr(1)), json({{"e", ""}}));
}

}  // namespace
}  // namespace cde
