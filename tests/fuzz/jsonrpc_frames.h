// Shared by fuzz_jsonrpc and fuzz_mcp_session: the JSON-RPC decoder's
// invariants, and a fuzz input split into frames the way the stdio
// transport splits its stream.
#ifndef CDE_TESTS_FUZZ_JSONRPC_FRAMES_H_
#define CDE_TESTS_FUZZ_JSONRPC_FRAMES_H_

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/jsonrpc.h"

namespace cde::fuzz {

using nlohmann::json;

inline constexpr size_t kMaxFrames = 16;

[[noreturn]] inline void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

inline bool IsValidId(const json& id) {
  return id.is_string() || id.is_number_integer();
}

// Decodes `text` and checks the message's invariants.
inline jsonrpc::Message CheckDecode(std::string_view text) {
  jsonrpc::Message msg = jsonrpc::Decode(text);
  if (auto* r = std::get_if<jsonrpc::Request>(&msg)) {
    if (!IsValidId(r->id)) Fail("Decode", "request id " + r->id.dump());
    if (!r->params.is_null() && !r->params.is_object() &&
        !r->params.is_array()) {
      Fail("Decode", "request params " + r->params.dump());
    }
    // What the server echoes back must encode.
    (void)json::parse(jsonrpc::EncodeResult(r->id, json::object()));
    return msg;
  }
  if (auto* n = std::get_if<jsonrpc::Notification>(&msg)) {
    if (!n->params.is_null() && !n->params.is_object() &&
        !n->params.is_array()) {
      Fail("Decode", "notification params");
    }
    return msg;
  }
  if (auto* r = std::get_if<jsonrpc::Response>(&msg)) {
    if (!IsValidId(r->id)) Fail("Decode", "response id " + r->id.dump());
    if (r->result.has_value() == r->error.has_value()) {
      Fail("Decode", "a response with both or neither of result and error");
    }
    if (r->error && !(*r->error)["code"].is_number_integer()) {
      Fail("Decode", "an error without an integer code");
    }
    return msg;
  }
  const auto& e = std::get<jsonrpc::DecodeError>(msg);
  if (e.code != jsonrpc::kParseError && e.code != jsonrpc::kInvalidRequest) {
    Fail("Decode", "error code " + std::to_string(e.code));
  }
  if (!e.id.is_null() && !IsValidId(e.id)) Fail("Decode", "error id");
  if (e.message.empty()) Fail("Decode", "an error without a message");
  // The error reply must be valid JSON whatever bytes the message quotes.
  const json reply =
      json::parse(jsonrpc::EncodeError(e.id, e.code, e.message), nullptr,
                  /*allow_exceptions=*/false);
  if (reply.is_discarded()) Fail("EncodeError", "invalid JSON");
  return msg;
}

struct Frame {
  std::string_view text;
  jsonrpc::Message msg;  // as decoded
};

// The frames of `input`, as StdioTransport::OnLine would pass them on.
inline std::vector<Frame> Frames(std::string_view input) {
  std::vector<Frame> frames;
  while (!input.empty() && frames.size() < kMaxFrames) {
    const size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view()
                                         : input.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
      line.remove_suffix(1);
    }
    if (!line.empty()) frames.push_back({line, CheckDecode(line)});
  }
  return frames;
}

}  // namespace cde::fuzz

#endif  // CDE_TESTS_FUZZ_JSONRPC_FRAMES_H_
