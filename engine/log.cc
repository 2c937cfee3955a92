#include "engine/log.h"

#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "engine/json_text.h"

namespace cde {
namespace {

constexpr size_t kAsyncQueueItems = 8192;
constexpr LogLevel kDefaultLevel = LogLevel::kWarn;

// Sits between the spdlog logger and the real sink, for two reasons:
// spdlog 1.10's async flush only posts a request and returns, so FlushLogs
// needs to learn when the worker has actually done it; and each line is
// flushed at once, so that a crash (the case this engine is built for) does
// not take the last lines with it. In async mode that cost is paid by the
// worker thread, not by the caller.
class FlushTrackingSink final : public spdlog::sinks::sink {
 public:
  explicit FlushTrackingSink(spdlog::sink_ptr inner)
      : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    inner_->log(msg);
    inner_->flush();
  }
  void flush() override {
    inner_->flush();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++flushes_;
    }
    cv_.notify_all();
  }
  void set_pattern(const std::string& pattern) override {
    inner_->set_pattern(pattern);
  }
  void set_formatter(
      std::unique_ptr<spdlog::formatter> sink_formatter) override {
    inner_->set_formatter(std::move(sink_formatter));
  }

  uint64_t flushes() {
    std::lock_guard<std::mutex> lock(mu_);
    return flushes_;
  }
  void WaitForFlushAfter(uint64_t seen) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return flushes_ > seen; });
  }

 private:
  spdlog::sink_ptr inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t flushes_ = 0;
};

// One configured logger. Log calls take a shared_ptr copy, so a logger being
// replaced stays alive (thread pool included) until the last of them is done.
struct LoggerState {
  ~LoggerState() {
    // The logger goes first; the pool's destructor then drains the queue
    // (each queued line holds its own reference to the logger) and joins.
    logger.reset();
    pool.reset();
  }

  bool json = true;
  bool async = false;
  std::shared_ptr<spdlog::details::thread_pool> pool;  // async only
  std::shared_ptr<FlushTrackingSink> sink;
  std::shared_ptr<spdlog::logger> logger;
  // A flush completes the oldest pending request; one at a time keeps "the
  // next flush after mine was posted" meaning "mine".
  std::mutex flush_mu;
};

// Leaked on purpose: code that logs during static destruction must not find
// the logger already destroyed.
struct Global {
  std::mutex mu;
  std::shared_ptr<LoggerState> state;  // guarded by mu
};

// Read on every Log call before anything else, so a disabled level costs one
// relaxed load.
std::atomic<int> g_level{static_cast<int>(kDefaultLevel)};

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::off;
}

// Deliberately not registered with spdlog's registry: the name would clash
// with other loggers, and spdlog::drop_all() elsewhere must not take ours.
std::shared_ptr<LoggerState> MakeState(spdlog::sink_ptr inner, bool json,
                                       bool async) {
  auto state = std::make_shared<LoggerState>();
  state->json = json;
  state->async = async;
  state->sink = std::make_shared<FlushTrackingSink>(std::move(inner));
  if (async) {
    state->pool = std::make_shared<spdlog::details::thread_pool>(
        kAsyncQueueItems, /*threads_n=*/1);
    // Blocking rather than dropping: a lost line in a saga's history is worse
    // than a caller that waits for the writer to catch up.
    state->logger = std::make_shared<spdlog::async_logger>(
        "cde.log", state->sink, state->pool,
        spdlog::async_overflow_policy::block);
  } else {
    state->logger = std::make_shared<spdlog::logger>("cde.log", state->sink);
  }
  // Lines arrive fully formatted; filtering is done by g_level.
  state->logger->set_pattern("%v");
  state->logger->set_level(spdlog::level::trace);
  return state;
}

std::shared_ptr<LoggerState> MakeDefaultState() {
  return MakeState(std::make_shared<spdlog::sinks::stderr_sink_mt>(),
                   /*json=*/true, /*async=*/false);
}

Global& G() {
  static Global* g = [] {
    auto* global = new Global;
    global->state = MakeDefaultState();
    return global;
  }();
  return *g;
}

std::shared_ptr<LoggerState> CurrentState() {
  Global& g = G();
  std::lock_guard<std::mutex> lock(g.mu);
  return g.state;
}

void FlushState(LoggerState& state) {
  std::lock_guard<std::mutex> lock(state.flush_mu);
  uint64_t seen = state.sink->flushes();
  state.logger->flush();
  // A sync logger has flushed by now; an async one has only queued the
  // request.
  if (state.async) state.sink->WaitForFlushAfter(seen);
}

// Installs `next` and retires the previous logger: its lines are written out
// and its thread joined before this returns, so that ShutdownLogging before
// exit loses nothing.
void Replace(std::shared_ptr<LoggerState> next) {
  std::shared_ptr<LoggerState> old;
  {
    Global& g = G();
    std::lock_guard<std::mutex> lock(g.mu);
    old = std::exchange(g.state, std::move(next));
  }
  FlushState(*old);
  // No new references can appear once the swap is done; the remaining ones
  // belong to Log calls that are about to return.
  while (old.use_count() > 1) std::this_thread::yield();
  old.reset();
}

void AppendJsonString(std::string_view s, std::string* out) {
  // Invalid UTF-8 (from an action's output, say) is replaced instead of
  // throwing: a log line must never fail.
  out->append(
      nlohmann::json(std::string(s))
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void AppendTimestamp(int64_t ts_ms, std::string* out) {
  int64_t secs = ts_ms / 1000;
  int64_t ms = ts_ms % 1000;
  if (ms < 0) {  // before 1970: round towards the past, not towards zero
    ms += 1000;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];  // sized for any int, so the compiler can prove no truncation
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out->append(buf);
}

// The fixed fields in their documented order; extra's keys come after.
struct NamedField {
  std::string_view key;
  std::string_view value;
};

std::vector<NamedField> StringFields(const LogFields& f) {
  return {{"saga_id", f.saga_id},
          {"workflow", f.workflow},
          {"step", f.step},
          {"correlation_id", f.correlation_id},
          {"trace_id", f.trace_id}};
}

// True if `key` is a field already written on this line; JSON objects with
// duplicate keys parse differently from one reader to the next.
bool IsTakenKey(std::string_view key, const LogFields& f) {
  if (key == "ts" || key == "level" || key == "logger" || key == "msg") {
    return true;
  }
  if (key == "attempt") return f.attempt != 0;
  for (const NamedField& field : StringFields(f)) {
    if (key == field.key) return !field.value.empty();
  }
  return false;
}

std::string FormatJson(int64_t ts_ms, LogLevel level, std::string_view logger,
                       std::string_view msg, const LogFields& fields) {
  std::string out;
  out.reserve(128 + msg.size());
  out.append("{\"ts\":\"");
  AppendTimestamp(ts_ms, &out);
  out.append("\",\"level\":\"");
  out.append(LogLevelName(level));
  out.append("\",\"logger\":");
  AppendJsonString(logger, &out);
  out.append(",\"msg\":");
  AppendJsonString(msg, &out);
  std::vector<NamedField> strings = StringFields(fields);
  auto append_string = [&](const NamedField& field) {
    if (field.value.empty()) return;
    out.append(",\"");
    out.append(field.key);
    out.append("\":");
    AppendJsonString(field.value, &out);
  };
  append_string(strings[0]);  // saga_id
  append_string(strings[1]);  // workflow
  append_string(strings[2]);  // step
  if (fields.attempt != 0) {
    out.append(",\"attempt\":");
    out.append(std::to_string(fields.attempt));
  }
  append_string(strings[3]);  // correlation_id
  append_string(strings[4]);  // trace_id
  if (fields.extra.is_object()) {
    for (const auto& [key, value] : fields.extra.items()) {
      if (IsTakenKey(key, fields)) continue;
      out.push_back(',');
      AppendJsonString(key, &out);
      out.push_back(':');
      out.append(DumpJson(value));
    }
  } else if (!fields.extra.is_null()) {
    out.append(",\"extra\":");
    out.append(DumpJson(fields.extra));
  }
  out.push_back('}');
  return out;
}

// Text lines are for people, but one record must still be one line: control
// characters are written as escapes.
void AppendTextEscaped(std::string_view s, std::string* out) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out->append(buf);
    } else {
      out->push_back(c);
    }
  }
}

// key=value, with the value quoted (JSON-style) when it would otherwise be
// ambiguous to split on spaces and '='.
void AppendTextPair(std::string_view key, std::string_view value,
                    std::string* out) {
  out->push_back(' ');
  out->append(key);
  out->push_back('=');
  bool plain = !value.empty();
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out->append(value);
  } else {
    AppendJsonString(value, out);
  }
}

std::string FormatText(int64_t ts_ms, LogLevel level, std::string_view logger,
                       std::string_view msg, const LogFields& fields) {
  static constexpr std::string_view kPadded[] = {"TRACE", "DEBUG", "INFO ",
                                                 "WARN ", "ERROR", "OFF  "};
  std::string out;
  out.reserve(96 + msg.size());
  AppendTimestamp(ts_ms, &out);
  out.push_back(' ');
  out.append(kPadded[static_cast<int>(level)]);
  out.push_back(' ');
  AppendTextEscaped(logger, &out);
  out.append(": ");
  AppendTextEscaped(msg, &out);
  std::vector<NamedField> strings = StringFields(fields);
  for (size_t i = 0; i < strings.size(); ++i) {
    if (i == 3 && fields.attempt != 0) {
      AppendTextPair("attempt", std::to_string(fields.attempt), &out);
    }
    if (!strings[i].value.empty()) {
      AppendTextPair(strings[i].key, strings[i].value, &out);
    }
  }
  if (fields.extra.is_object()) {
    for (const auto& [key, value] : fields.extra.items()) {
      if (IsTakenKey(key, fields)) continue;
      AppendTextPair(key,
                     value.is_string() ? value.get_ref<const std::string&>()
                                       : DumpJson(value),
                     &out);
    }
  } else if (!fields.extra.is_null()) {
    AppendTextPair("extra", DumpJson(fields.extra), &out);
  }
  return out;
}

}  // namespace

Result<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "trace") return LogLevel::kTrace;
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  if (name == "off") return LogLevel::kOff;
  return Status::InvalidArgument("unknown log level '" + std::string(name) +
                                 "' (trace, debug, info, warn, error, off)");
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "off";
}

Status ConfigureLogging(const LogOptions& options) {
  if (options.format != "json" && options.format != "text") {
    return Status::InvalidArgument("log.format: must be json or text");
  }
  std::shared_ptr<LoggerState> next;
  try {
    spdlog::sink_ptr inner;
    if (options.file.empty()) {
      inner = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      inner = std::make_shared<spdlog::sinks::basic_file_sink_mt>(
          options.file, /*truncate=*/false);
    }
    next = MakeState(std::move(inner), options.format == "json", options.async);
  } catch (const std::exception& e) {
    if (options.file.empty()) {
      return Status::IOError(std::string("log: ") + e.what());
    }
    return Status::IOError("log.file '" + options.file +
                           "': cannot open: " + e.what());
  }
  g_level.store(static_cast<int>(options.level), std::memory_order_relaxed);
  Replace(std::move(next));
  return Status::OK();
}

void SetLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel CurrentLogLevel() {
  return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff &&
         static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view logger, std::string_view msg,
         const LogFields& fields) {
  if (!LogEnabled(level)) return;
  std::shared_ptr<LoggerState> state = CurrentState();
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string line = state->json
                         ? FormatJson(now_ms, level, logger, msg, fields)
                         : FormatText(now_ms, level, logger, msg, fields);
  state->logger->log(ToSpdlog(level),
                     spdlog::string_view_t(line.data(), line.size()));
}

void FlushLogs() { FlushState(*CurrentState()); }

void ShutdownLogging() {
  g_level.store(static_cast<int>(kDefaultLevel), std::memory_order_relaxed);
  Replace(MakeDefaultState());
}

std::string FormatLogLine(std::string_view format, int64_t ts_ms,
                          LogLevel level, std::string_view logger,
                          std::string_view msg, const LogFields& fields) {
  if (format == "text") return FormatText(ts_ms, level, logger, msg, fields);
  return FormatJson(ts_ms, level, logger, msg, fields);
}

}  // namespace cde
