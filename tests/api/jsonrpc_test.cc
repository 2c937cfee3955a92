// Decoding untrusted JSON-RPC frames: every malformed shape gets the right
// code and a message naming what is wrong; good frames decode exactly.
#include "api/jsonrpc.h"

#include <gtest/gtest.h>

namespace cde::jsonrpc {
namespace {

using nlohmann::json;

TEST(JsonRpcTest, RequestNotificationAndResponseDecode) {
  auto req = std::get<Request>(
      Decode(R"({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}})"));
  EXPECT_EQ(req.id, 7);
  EXPECT_EQ(req.method, "tools/list");
  EXPECT_EQ(req.params, json::object());

  auto note = std::get<Notification>(
      Decode(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
  EXPECT_EQ(note.method, "notifications/initialized");
  EXPECT_TRUE(note.params.is_null());

  auto resp = std::get<Response>(
      Decode(R"({"jsonrpc":"2.0","id":"a","result":{"ok":true}})"));
  EXPECT_EQ(resp.id, "a");
  EXPECT_EQ(*resp.result, json({{"ok", true}}));
}

struct Bad {
  std::string name;
  std::string text;
  int code;
  std::string message;  // a substring of the error message
  json id;
};

class JsonRpcBadTest : public ::testing::TestWithParam<Bad> {};

TEST_P(JsonRpcBadTest, GetsItsCodeAndAMessageSayingWhat) {
  auto err = std::get<DecodeError>(Decode(GetParam().text, 64));
  EXPECT_EQ(err.code, GetParam().code);
  EXPECT_NE(err.message.find(GetParam().message), std::string::npos)
      << err.message;
  EXPECT_EQ(err.id, GetParam().id);
}

INSTANTIATE_TEST_SUITE_P(
    Frames, JsonRpcBadTest,
    ::testing::Values(
        Bad{"NotJson", R"({"jsonrpc": "2.0", "id": 1,)", kParseError,
            "invalid JSON at byte", nullptr},
        Bad{"Batch", R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])",
            kInvalidRequest, "batches", nullptr},
        Bad{"NotObject", R"("ping")", kInvalidRequest, "JSON object", nullptr},
        Bad{"WrongVersion", R"({"jsonrpc":"1.0","id":1,"method":"ping"})",
            kInvalidRequest, "jsonrpc: must be \"2.0\"", 1},
        Bad{"BadId", R"({"jsonrpc":"2.0","id":[1],"method":"ping"})",
            kInvalidRequest, "id: must be a string or an integer", nullptr},
        Bad{"MethodNotString", R"({"jsonrpc":"2.0","id":2,"method":5})",
            kInvalidRequest, "method: must be a string", 2},
        Bad{"ParamsScalar",
            R"({"jsonrpc":"2.0","id":"x","method":"a","params":3})",
            kInvalidRequest, "params: must be an object or an array", "x"},
        Bad{"Neither", R"({"jsonrpc":"2.0"})", kInvalidRequest,
            "needs a method or an id", nullptr},
        Bad{"Both", R"({"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1}})",
            kInvalidRequest, "exactly one of result and error", 1},
        Bad{"TooLarge", std::string(100, ' '), kInvalidRequest,
            "exceeds the limit of 64 bytes", nullptr}),
    [](const auto& info) { return info.param.name; });

TEST(JsonRpcTest, EncodedRepliesAreJsonRpc) {
  EXPECT_EQ(json::parse(EncodeResult(3, {{"a", 1}})),
            json({{"jsonrpc", "2.0"}, {"id", 3}, {"result", {{"a", 1}}}}));
  EXPECT_EQ(
      json::parse(EncodeError(nullptr, kParseError, "bad", {{"at", 4}})),
      json({{"jsonrpc", "2.0"},
            {"id", nullptr},
            {"error",
             {{"code", -32700}, {"message", "bad"}, {"data", {{"at", 4}}}}}}));
  EXPECT_EQ(json::parse(EncodeNotification("notifications/progress", nullptr)),
            json({{"jsonrpc", "2.0"}, {"method", "notifications/progress"}}));
}

TEST(JsonRpcTest, EncodedResultIsCompactWithSortedKeys) {
  // Built by hand for speed: the bytes must be what nlohmann would write.
  for (const Id& id : {Id(7), Id("req-1"), Id("quote\"d")}) {
    for (const json& result :
         {json::object(), json(nullptr), json::parse(R"({"z": [1, {"b": 2,
          "a": "\u00e9"}], "a": true})")}) {
      EXPECT_EQ(
          EncodeResult(id, result),
          json({{"jsonrpc", "2.0"}, {"id", id}, {"result", result}}).dump());
    }
  }
}

TEST(JsonRpcTest, InvalidUtf8InAnErrorMessageStillEncodes) {
  const std::string out = EncodeError(1, kInvalidParams, "bad \xff byte");
  EXPECT_TRUE(json::parse(out).is_object());
}

}  // namespace
}  // namespace cde::jsonrpc
