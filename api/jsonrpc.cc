#include "api/jsonrpc.h"

#include "storage/json_depth.h"

namespace cde::jsonrpc {
namespace {

using nlohmann::json;

bool IsValidId(const json& id) {
  return id.is_string() || id.is_number_integer();
}

DecodeError Invalid(std::string message, Id id = nullptr) {
  return {kInvalidRequest, std::move(message), std::move(id)};
}

}  // namespace

Message Decode(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return DecodeError{kInvalidRequest,
                       "message of " + std::to_string(text.size()) +
                           " bytes exceeds the limit of " +
                           std::to_string(max_bytes) + " bytes",
                       nullptr};
  }
  json msg;
  try {
    msg = json::parse(text);
  } catch (const json::parse_error& e) {
    return DecodeError{
        kParseError,
        "invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what(),
        nullptr};
  } catch (const json::exception& e) {
    // A number beyond a double ("1E400") is out_of_range, not parse_error
    // (found by tests/fuzz/fuzz_jsonrpc; it used to end the process).
    return DecodeError{kParseError, std::string("invalid JSON: ") + e.what(),
                       nullptr};
  }
  // Copies and dumps of the message recurse once per level (a 400 KB
  // message of nested arrays overflowed the server's stack).
  if (const size_t depth = JsonTextDepth(text); depth > kMaxJsonDepth) {
    return Invalid(TooDeepMessage(depth));
  }
  if (msg.is_array()) {
    return Invalid(
        "batches (JSON arrays) are not supported; send one "
        "message per frame");
  }
  if (!msg.is_object()) return Invalid("a message must be a JSON object");

  Id id = nullptr;
  const bool has_id = msg.contains("id");
  if (has_id) {
    id = msg["id"];
    if (!IsValidId(id)) {
      return Invalid("id: must be a string or an integer", nullptr);
    }
  }
  auto version = msg.find("jsonrpc");
  if (version == msg.end() || *version != "2.0") {
    return Invalid("jsonrpc: must be \"2.0\"", id);
  }
  if (auto method = msg.find("method"); method != msg.end()) {
    if (!method->is_string()) return Invalid("method: must be a string", id);
    json params = nullptr;
    if (auto p = msg.find("params"); p != msg.end()) {
      if (!p->is_object() && !p->is_array()) {
        return Invalid("params: must be an object or an array", id);
      }
      params = std::move(*p);  // msg is ours: no copy of the arguments
    }
    if (!has_id) {
      return Notification{method->get<std::string>(), std::move(params)};
    }
    return Request{std::move(id), method->get<std::string>(),
                   std::move(params)};
  }
  if (!has_id) return Invalid("a message needs a method or an id");
  Response r{id, std::nullopt, std::nullopt};
  if (auto res = msg.find("result"); res != msg.end()) r.result = *res;
  if (auto err = msg.find("error"); err != msg.end()) {
    if (!err->is_object() || !err->contains("code") ||
        !(*err)["code"].is_number_integer()) {
      return Invalid("error: must be an object with an integer code", id);
    }
    r.error = *err;
  }
  if (r.result.has_value() == r.error.has_value()) {
    return Invalid("a response needs exactly one of result and error", id);
  }
  return r;
}

std::string EncodeResult(const Id& id, const nlohmann::json& result) {
  // The envelope by hand: a json object around `result` would copy it
  // whole. The same bytes as json{...}.dump(), whose keys are sorted.
  std::string out = R"({"id":)";
  out += id.dump();
  out += R"(,"jsonrpc":"2.0","result":)";
  out += result.dump();
  out += '}';
  return out;
}

std::string EncodeError(const Id& id, int code, const std::string& message,
                        const nlohmann::json& data) {
  json error = {{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = data;
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", error}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

std::string EncodeNotification(const std::string& method,
                               const nlohmann::json& params) {
  json msg = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) msg["params"] = params;
  return msg.dump();
}

}  // namespace cde::jsonrpc
