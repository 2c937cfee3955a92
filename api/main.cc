// cde-orchestrator: the server. `cde-orchestrator serve --help`.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "api/server.h"

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
                  "MCP over stdin/stdout (HTTP stays off unless --http)");
  bool http_flag = false;
  serve->add_flag("--http", http_flag, "MCP over HTTP as well as stdio");
  serve->add_option("--host", o.host, "HTTP listen address")
      ->capture_default_str();
  serve->add_option("--port", o.port, "HTTP port")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve
      ->add_option("--max-message-bytes", o.max_message_bytes,
                   "largest MCP message accepted")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.stdio) o.http = http_flag;
  cde::Status s = cde::RunServer(o);
  if (!s.ok()) {
    std::fprintf(stderr, "cde-orchestrator: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
