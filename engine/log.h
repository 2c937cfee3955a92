// Structured logging for the engine, the server and the tools.
//
// One process-wide logger (spdlog underneath; asynchronous once configured
// so that the loop thread never waits on a write to stderr or a file).
// Each line is one JSON object:
//
//   {"ts":"2026-11-27T10:15:02.123Z","level":"info","logger":"engine",
//    "msg":"saga completed","saga_id":"01J...","workflow":"trip",
//    "step":"book","attempt":2,"correlation_id":"req-7","trace_id":"4bf9..."}
//
// Fields that are empty (or attempt 0) are left out; `extra` adds its own
// keys after them. With format "text" a line reads
//
//   2026-11-27T10:15:02.123Z INFO  engine: saga completed saga_id=01J...
//   step=book
//
// Thread safety: every function is thread-safe.
#ifndef CDE_ENGINE_LOG_H_
#define CDE_ENGINE_LOG_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "storage/status.h"

namespace cde {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// "trace", "debug", "info", "warn", "error", "off" (also "warning").
Result<LogLevel> ParseLogLevel(std::string_view name);
std::string_view LogLevelName(LogLevel level);

struct LogOptions {
  LogLevel level = LogLevel::kInfo;
  std::string format = "json";  // "json" or "text"
  std::string file;             // "" = stderr
  bool async = true;            // a background thread does the writing

  friend bool operator==(const LogOptions&, const LogOptions&) = default;
};

// What a line is about. Everything is optional.
struct LogFields {
  std::string_view saga_id;
  std::string_view workflow;
  std::string_view step;
  uint32_t attempt = 0;
  std::string_view correlation_id;
  std::string_view trace_id;
  nlohmann::json extra;  // null, or an object whose keys are added
};

// Replaces the process logger. InvalidArgument for a bad format, IOError
// for a file that cannot be opened (the old logger stays). Until the first
// call, lines go synchronously to stderr as JSON at level warn.
Status ConfigureLogging(const LogOptions& options);
// Changes the level of the current logger (a configuration reload).
void SetLogLevel(LogLevel level);
LogLevel CurrentLogLevel();
bool LogEnabled(LogLevel level);

// Writes one line if `level` is enabled.
void Log(LogLevel level, std::string_view logger, std::string_view msg,
         const LogFields& fields = {});

// Writes out everything queued (async mode) and flushes the sink.
void FlushLogs();
// Flushes, stops the background thread and goes back to the synchronous
// stderr default. Call before exit.
void ShutdownLogging();

// The line `Log` would write, without the trailing newline: for tests and
// for tools that print log-shaped lines themselves. `ts_ms`: wall-clock ms.
std::string FormatLogLine(std::string_view format, int64_t ts_ms,
                          LogLevel level, std::string_view logger,
                          std::string_view msg, const LogFields& fields);

}  // namespace cde

#endif  // CDE_ENGINE_LOG_H_
