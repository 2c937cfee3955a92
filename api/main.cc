// cde-orchestrator: the server. `cde-orchestrator serve --help`; the
// configuration file and variables are in docs/configuration.md.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/config.h"
#include "api/server.h"

namespace {

using nlohmann::json;

// The `serve` command line. Only the flags given (`given`) override the file
// and the environment, at start and again on each reload.
struct Flags {
  std::string config_file;
  cde::Config values;  // what the flags given say
  std::string http, log_level, log_format, auth_tokens;
  std::set<std::string> given;  // "--port", ...

  bool Given(const char* flag) const { return given.count(flag) > 0; }
};

// The configuration a document holding only `value` at `path` gives, so
// that a flag accepts exactly what the file does.
cde::Result<cde::Config> Only(const std::string& path,
                              const std::string& value) {
  const size_t dot = path.find('.');
  return cde::ParseConfig(
      json{{path.substr(0, dot), {{path.substr(dot + 1), value}}}});
}

// A CLI11 check by the configuration's rule for `path`.
std::function<std::string(const std::string&)> Like(std::string path) {
  return [path](const std::string& value) -> std::string {
    cde::Result<cde::Config> r = Only(path, value);
    if (r.ok()) return "";
    const std::string& m = r.status().message();
    const size_t at = m.find(path + ": ");
    return at == std::string::npos ? m : m.substr(at + path.size() + 2);
  };
}

// The file, then the environment, then the flags given.
cde::Result<cde::Config> Load(const Flags& f) {
  cde::Result<cde::Config> loaded =
      cde::LoadConfig(f.config_file, cde::ProcessEnvironment());
  if (!loaded.ok()) return loaded;
  cde::Config c = std::move(loaded).value();
  const cde::Config& v = f.values;
  if (f.Given("--data-dir")) c.data_dir = v.data_dir;
  if (f.Given("--workflows")) c.workflows_dir = v.workflows_dir;
  if (f.Given("--stdio")) {
    c.stdio = true;
    // stdout then carries protocol frames; HTTP only when asked for too.
    if (!f.Given("--http")) c.http.enabled = false;
  }
  if (f.Given("--host")) c.http.host = v.http.host;
  if (f.Given("--port")) c.http.port = v.http.port;
  if (f.Given("--http")) {
    const cde::HttpConfig listen = Only("http.listen", f.http)->http;
    c.http.enabled = listen.enabled;
    if (listen.enabled) {
      c.http.host = listen.host;
      c.http.port = listen.port;
    }
  }
  if (f.Given("--allow-origin")) {
    c.http.allowed_origins = v.http.allowed_origins;
  }
  if (f.Given("--auth-tokens")) c.http.auth_tokens_file = f.auth_tokens;
  if (f.Given("--max-message-bytes")) {
    c.http.max_message_bytes = v.http.max_message_bytes;
  }
  if (f.Given("--log-level")) {
    c.log.level = Only("log.level", f.log_level)->log.level;
  }
  if (f.Given("--log-format")) c.log.format = f.log_format;
  if (!c.http.enabled && !c.stdio) {
    return cde::Status::InvalidArgument(
        f.Given("--http")
            ? "--http none without --stdio leaves nothing to serve"
            : "http.listen \"none\" without stdio leaves "
              "nothing to serve");
  }
  // Without tokens anyone who reaches the port can start and register
  // workflows: that is only this machine's processes on loopback.
  if (c.http.enabled && c.http.auth_tokens_file.empty() &&
      c.auth_tokens.empty() && !cde::IsLoopbackHost(c.http.host)) {
    return cde::Status::InvalidArgument(
        std::string(f.Given("--http") || f.Given("--host") ? "--http"
                                                           : "http.listen") +
        ": " + c.http.host +
        " is not a loopback address, and no bearer tokens are configured: "
        "anyone who reaches it could run workflows. Set "
        "auth.tokens (or --auth-tokens), or listen on 127.0.0.1");
  }
  if (c.http.enabled && !c.http.auth_tokens_file.empty()) {
    cde::Result<std::set<std::string>> tokens =
        cde::ReadTokenFile(c.http.auth_tokens_file);
    if (!tokens.ok()) {
      return tokens.status().WithContext(
          f.Given("--auth-tokens") ? "--auth-tokens" : "http.auth_tokens_file");
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CDE Orchestrator: durable sagas over MCP"};
  app.require_subcommand(1);
  Flags f;
  cde::Config& v = f.values;
  CLI::App* serve = app.add_subcommand("serve", "run the server");
  std::vector<CLI::Option*> options = {
      serve->add_option("--config", f.config_file,
                        "a JSON configuration file (docs/configuration.md); "
                        "CDE_* variables and these flags override it"),
      serve
          ->add_option("--data-dir", v.data_dir,
                       "the store (created if missing)")
          ->capture_default_str(),
      serve->add_option("--workflows", v.workflows_dir,
                        "register every *.json definition in this directory"),
      serve->add_flag("--stdio", v.stdio,
                      "MCP over stdin/stdout (HTTP then stays off unless "
                      "--http is given)"),
      serve
          ->add_option("--http", f.http,
                       "where MCP over HTTP and the health endpoints listen: "
                       "HOST:PORT, or none (default 127.0.0.1:8000)")
          ->check(Like("http.listen")),
      serve->add_option("--host", v.http.host, "HTTP listen address")
          ->capture_default_str(),
      serve->add_option("--port", v.http.port, "HTTP port")
          ->check(CLI::Range(0, 65535))
          ->capture_default_str(),
      serve->add_option("--allow-origin", v.http.allowed_origins,
                        "a browser Origin allowed to call /mcp besides "
                        "localhost ones (repeatable; * allows any)"),
      serve->add_option("--auth-tokens", f.auth_tokens,
                        "a file of bearer tokens, one per line: /mcp then "
                        "requires Authorization: Bearer <token>"),
      serve
          ->add_option("--max-message-bytes", v.http.max_message_bytes,
                       "largest MCP message accepted")
          ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
          ->capture_default_str(),
      serve
          ->add_option("--log-level", f.log_level,
                       "trace, debug, info (default), warn, error or off")
          ->check(Like("log.level")),
      serve->add_option("--log-format", f.log_format, "json (default) or text")
          ->check(Like("log.format")),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "cde-orchestrator: %s\n", e.what());
    return 2;
  }
  for (CLI::Option* o : options) {
    if (o->count() > 0) f.given.insert(o->get_name());
  }
  cde::Result<cde::Config> config = Load(f);
  if (!config.ok()) {
    std::fprintf(stderr, "cde-orchestrator: %s\n",
                 config.status().message().c_str());
    return 2;
  }
  cde::Status s =
      cde::RunServer({std::move(config).value(), [f] { return Load(f); }});
  if (!s.ok()) {
    std::fprintf(stderr, "cde-orchestrator: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
