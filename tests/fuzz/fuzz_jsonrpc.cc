// Fuzzes the JSON-RPC decoder (api/jsonrpc.h) with arbitrary bytes: the
// whole input as one frame, and each of its lines as the stdio transport
// would pass them on. Every decoded message must be consistent (ids string
// or integer, methods strings, params an object or an array, a response
// with exactly one of result and error, only the protocol's error codes),
// and the replies the server would send about it must encode as valid JSON.
// tests/fuzz/fuzz_mcp_session.cc feeds the same frames to an MCP session.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/jsonrpc_frames.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cde::fuzz;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<Frame> frames = Frames(input);  // decodes each line
  if (frames.size() != 1 || frames[0].text.size() != input.size()) {
    (void)CheckDecode(input);  // line breaks and all
  }
  return 0;
}
