// cde-orchestrator: the server. `cde-orchestrator serve --help`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "api/server.h"

namespace {

// "HOST:PORT", "[V6]:PORT" or "none" into the options; "" if fine, else why
// not.
std::string ParseHttpListen(const std::string& value, cde::ServerOptions* o) {
  if (value == "none") {
    o->http = false;
    return "";
  }
  const size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon + 1 == value.size()) {
    return "--http: '" + value + "' is not HOST:PORT or none";
  }
  std::string host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  for (char c : value.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) {
      return "--http: bad port in '" + value + "'";
    }
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return "--http: bad port in '" + value + "'";
  o->http = true;
  o->host = host.empty() ? "127.0.0.1" : host;
  o->port = port;
  return "";
}

// One token per line; blank lines and lines starting with '#' are skipped.
std::string ReadTokens(const std::string& path, cde::ServerOptions* o) {
  std::ifstream in(path);
  if (!in) return "--auth-tokens: cannot read " + path;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') continue;
    o->bearer_tokens.insert(line);
  }
  if (o->bearer_tokens.empty()) return "--auth-tokens: no token in " + path;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CDE Orchestrator: durable sagas over MCP"};
  app.require_subcommand(1);
  cde::ServerOptions o;
  CLI::App* serve = app.add_subcommand("serve", "run the server");
  serve->add_option("--data-dir", o.data_dir, "the store (created if missing)")
      ->capture_default_str();
  serve->add_option("--workflows", o.workflows_dir,
                    "register every *.json definition in this directory");
  serve->add_flag("--stdio", o.stdio,
                  "MCP over stdin/stdout (HTTP then stays off unless --http "
                  "is given)");
  std::string http_listen;
  serve->add_option("--http", http_listen,
                    "where MCP over HTTP and the health endpoints listen: "
                    "HOST:PORT, or none (default 127.0.0.1:8000)");
  serve->add_option("--host", o.host, "HTTP listen address (see --http)")
      ->capture_default_str();
  serve->add_option("--port", o.port, "HTTP port (see --http)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve->add_option("--allow-origin", o.allowed_origins,
                    "a browser Origin allowed to call /mcp besides localhost "
                    "ones (repeatable; * allows any)");
  std::string tokens_file;
  serve->add_option("--auth-tokens", tokens_file,
                    "a file of bearer tokens, one per line: /mcp then "
                    "requires Authorization: Bearer <token>");
  serve
      ->add_option("--max-message-bytes", o.max_message_bytes,
                   "largest MCP message accepted")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.stdio) o.http = false;
  std::string error;
  if (!http_listen.empty()) error = ParseHttpListen(http_listen, &o);
  if (error.empty() && !tokens_file.empty())
    error = ReadTokens(tokens_file, &o);
  if (error.empty() && !o.http && !o.stdio) {
    error = "--http none without --stdio leaves nothing to serve";
  }
  if (!error.empty()) {
    std::fprintf(stderr, "cde-orchestrator: %s\n", error.c_str());
    return 2;
  }
  cde::Status s = cde::RunServer(o);
  if (!s.ok()) {
    std::fprintf(stderr, "cde-orchestrator: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
