// HttpRoutes: what the server answers on HTTP. /mcp goes to the MCP
// transport; /health, /health/liveness, /health/readiness and /metrics are
// answered here, as are the operator endpoints /admin/backup and
// /admin/dlq/purge (no browsers, the `admin` scope, inbound rate limit).
// /metrics needs the `read` scope; the health probes need none. Every answer is
// counted by route and status code.
#ifndef CDE_API_HTTP_ROUTES_H_
#define CDE_API_HTTP_ROUTES_H_

#include <uv.h>

#include <memory>
#include <set>
#include <string>

#include "api/auth.h"
#include "api/http_server.h"
#include "api/mcp_http.h"
#include "engine/engine.h"
#include "engine/limits.h"

namespace cde {

class HttpRoutes {
 public:
  // `ready` is read on every readiness probe (false while starting and
  // shutting down). `inbound` (may be null: unlimited) limits the admin
  // POSTs on `loop`'s clock. Everything must outlive the routes.
  static std::unique_ptr<HttpRoutes> Create(Engine* engine, McpHttp* mcp,
                                            const bool* ready,
                                            TokenTable tokens,
                                            RateLimiters* inbound,
                                            uv_loop_t* loop);
  virtual ~HttpRoutes() = default;

  virtual void Handle(const HttpRequest& req, HttpServer::Respond respond) = 0;
};

}  // namespace cde

#endif  // CDE_API_HTTP_ROUTES_H_
