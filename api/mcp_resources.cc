// Resources: saga://{id}, saga://{id}/log, workflow://{name}/{version}.
#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"

namespace cde {

using nlohmann::json;

bool McpSession::OnResourceRequest(const json& id, const std::string& method,
                                   const json& params) {
  (void)id;
  (void)method;
  (void)params;
  return false;
}

}  // namespace cde
