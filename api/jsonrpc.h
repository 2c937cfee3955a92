// JSON-RPC 2.0 messages as MCP uses them: decoding untrusted text into a
// request, a notification or a response, with the protocol's error codes and
// a message that says what is wrong and where; and encoding replies.
//
// MCP (2025-06-18 and later) sends one message per frame and no batches; a
// JSON array is rejected as an invalid request.
#ifndef CDE_API_JSONRPC_H_
#define CDE_API_JSONRPC_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace cde::jsonrpc {

// The JSON-RPC 2.0 error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// A request id: a string or an integer (null only in error replies to
// messages whose id could not be read).
using Id = nlohmann::json;

struct Request {
  Id id;
  std::string method;
  nlohmann::json params;  // object, array, or null when absent
};

struct Notification {
  std::string method;
  nlohmann::json params;
};

// A reply from the peer (to a request we sent it).
struct Response {
  Id id;
  std::optional<nlohmann::json> result;
  std::optional<nlohmann::json> error;  // {code, message, data?}
};

// Why a frame is not a usable message, and the error reply to send (with
// the request's id when it could be read, else null).
struct DecodeError {
  int code;
  std::string message;
  Id id;
};

using Message = std::variant<Request, Notification, Response, DecodeError>;

// Decodes one frame. Frames larger than `max_bytes` are refused without
// being parsed.
Message Decode(std::string_view text, size_t max_bytes = 4 << 20);

// Encoders of replies and outgoing messages (compact JSON, no newline).
std::string EncodeResult(const Id& id, const nlohmann::json& result);
std::string EncodeError(const Id& id, int code, const std::string& message,
                        const nlohmann::json& data = nullptr);
std::string EncodeNotification(const std::string& method,
                               const nlohmann::json& params);

}  // namespace cde::jsonrpc

#endif  // CDE_API_JSONRPC_H_
