// One blocking HTTP request from a tool (cde-admin, cde-torture, the server
// tests) to a server on loopback, with libcurl's easy API. The engine's
// http steps do not use this: they run on the loop (engine/http_action.cc).
#ifndef CDE_TOOLS_HTTP_CALL_H_
#define CDE_TOOLS_HTTP_CALL_H_

#include <map>
#include <string>
#include <vector>

namespace cde {

struct HttpCall {
  std::string method = "GET";  // "POST" sends `body`
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  long timeout_ms = 30000;
  long connect_timeout_ms = 3000;
  // The local address to connect from ("127.0.0.2"); "" = any.
  std::string local_address;
};

struct HttpAnswer {
  std::string error;  // why there is no answer (curl's words); "" = answered
  long status = 0;
  std::string content_type;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  bool answered() const { return error.empty(); }
  // The value of header `lower_name`, "" when absent.
  std::string header(const std::string& lower_name) const;
};

// Performs `call`; proxies are never used (the servers are local).
HttpAnswer PerformHttpCall(const HttpCall& call);

// The data of each event of a text/event-stream body, in order (multi-line
// data joined with "\n").
std::vector<std::string> SseEventData(const std::string& body);

}  // namespace cde

#endif  // CDE_TOOLS_HTTP_CALL_H_
