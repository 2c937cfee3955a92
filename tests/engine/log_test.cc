// The log line formats (what log shippers and `jq` rely on) and the process
// logger: levels, sinks, async delivery and reconfiguration under load.
#include "engine/log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::TempDir;

// 2026-11-27T10:15:02.123Z
constexpr int64_t kTsMs = 1795774502123;

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The keys of a JSON object line in the order they were written (nlohmann
// sorts them, so the order is checked on the parsed keys' positions).
std::vector<std::string> KeysInOrder(const std::string& line) {
  std::vector<std::pair<size_t, std::string>> found;
  const json parsed = json::parse(line);
  for (const auto& [key, value] : parsed.items()) {
    size_t pos = line.find(json(key).dump() + ":");
    EXPECT_NE(pos, std::string::npos) << key;
    found.emplace_back(pos, key);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> keys;
  for (auto& [pos, key] : found) keys.push_back(key);
  return keys;
}

// Every test leaves the process logger as it found it.
class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { ShutdownLogging(); }
};

// ---------------------------------------------------------------------------
// FormatLogLine.

TEST(LogFormatTest, JsonLineHasAllFieldsInDocumentedOrder) {
  LogFields f;
  f.saga_id = "01JSAGA";
  f.workflow = "trip";
  f.step = "book";
  f.attempt = 2;
  f.correlation_id = "req-7";
  f.trace_id = "4bf9";
  std::string line = FormatLogLine("json", kTsMs, LogLevel::kInfo, "engine",
                                   "saga completed", f);
  EXPECT_EQ(line,
            R"({"ts":"2026-11-27T10:15:02.123Z","level":"info",)"
            R"("logger":"engine","msg":"saga completed","saga_id":"01JSAGA",)"
            R"("workflow":"trip","step":"book","attempt":2,)"
            R"("correlation_id":"req-7","trace_id":"4bf9"})");
  json j = json::parse(line);
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["msg"], "saga completed");
}

TEST(LogFormatTest, JsonLineOmitsEmptyFieldsAndZeroAttempt) {
  LogFields f;
  f.step = "book";
  f.trace_id = "4bf9";
  std::string line =
      FormatLogLine("json", kTsMs, LogLevel::kWarn, "engine", "slow", f);
  EXPECT_EQ(
      line,
      R"({"ts":"2026-11-27T10:15:02.123Z","level":"warn",)"
      R"("logger":"engine","msg":"slow","step":"book","trace_id":"4bf9"})");
  EXPECT_EQ(FormatLogLine("json", kTsMs, LogLevel::kError, "api", "x", {}),
            R"({"ts":"2026-11-27T10:15:02.123Z","level":"error",)"
            R"("logger":"api","msg":"x"})");
}

TEST(LogFormatTest, JsonLineNamesEveryLevel) {
  for (LogLevel level : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo,
                         LogLevel::kWarn, LogLevel::kError}) {
    json j = json::parse(FormatLogLine("json", 0, level, "l", "m", {}));
    EXPECT_EQ(j["level"], std::string(LogLevelName(level)));
  }
  EXPECT_EQ(LogLevelName(LogLevel::kTrace), "trace");
  EXPECT_EQ(LogLevelName(LogLevel::kWarn), "warn");
  EXPECT_EQ(LogLevelName(LogLevel::kError), "error");
}

TEST(LogFormatTest, TimestampIsUtcWithMillisecondsIncludingBefore1970) {
  EXPECT_EQ(json::parse(
                FormatLogLine("json", 0, LogLevel::kInfo, "l", "m", {}))["ts"],
            "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(json::parse(FormatLogLine("json", 1005, LogLevel::kInfo, "l", "m",
                                      {}))["ts"],
            "1970-01-01T00:00:01.005Z");
  EXPECT_EQ(json::parse(
                FormatLogLine("json", -1, LogLevel::kInfo, "l", "m", {}))["ts"],
            "1969-12-31T23:59:59.999Z");
}

TEST(LogFormatTest, JsonEscapesQuotesNewlinesAndControlCharacters) {
  const std::string msg = "say \"hi\"\nback\\slash\ttab\x01\x1f end";
  const std::string step = "a\"b\r\nc";
  LogFields f;
  f.step = step;
  f.correlation_id = std::string_view("nul\0byte", 8);
  std::string line =
      FormatLogLine("json", kTsMs, LogLevel::kInfo, "eng\"ine", msg, f);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  for (char c : line) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << line;
  json j = json::parse(line);
  EXPECT_EQ(j["msg"], msg);
  EXPECT_EQ(j["step"], step);
  EXPECT_EQ(j["logger"], "eng\"ine");
  EXPECT_EQ(j["correlation_id"], std::string("nul\0byte", 8));
}

TEST(LogFormatTest, JsonReplacesInvalidUtf8InsteadOfFailing) {
  std::string line = FormatLogLine("json", kTsMs, LogLevel::kInfo, "engine",
                                   "bad \xff\xfe bytes", {});
  json j = json::parse(line);
  EXPECT_EQ(j["msg"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST(LogFormatTest, ExtraKeysComeAfterTheFixedFields) {
  LogFields f;
  f.saga_id = "01JSAGA";
  f.attempt = 3;
  f.extra = {{"duration_ms", 12.5},
             {"action", "http"},
             {"detail", {{"code", 503}}},
             {"note", "line\n\"two\""}};
  std::string line =
      FormatLogLine("json", kTsMs, LogLevel::kInfo, "engine", "attempt", f);
  std::vector<std::string> keys = KeysInOrder(line);
  ASSERT_EQ(keys.size(), 10u) << line;
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + 6),
            (std::vector<std::string>{"ts", "level", "logger", "msg", "saga_id",
                                      "attempt"}));
  json j = json::parse(line);
  EXPECT_EQ(j["duration_ms"], 12.5);
  EXPECT_EQ(j["action"], "http");
  EXPECT_EQ(j["detail"]["code"], 503);
  EXPECT_EQ(j["note"], "line\n\"two\"");
}

TEST(LogFormatTest, ExtraKeysDoNotDuplicateFieldsOnTheLine) {
  LogFields f;
  f.step = "book";
  f.extra = {{"msg", "shadow"}, {"step", "other"}, {"workflow", "trip"}};
  std::string line =
      FormatLogLine("json", kTsMs, LogLevel::kInfo, "engine", "real", f);
  EXPECT_EQ(line.find("shadow"), std::string::npos);
  EXPECT_EQ(line.find("other"), std::string::npos);
  json j = json::parse(line);
  EXPECT_EQ(j["msg"], "real");
  EXPECT_EQ(j["step"], "book");
  EXPECT_EQ(j["workflow"], "trip");  // not set as a field: extra may add it
}

TEST(LogFormatTest, NonObjectExtraIsKeptUnderItsOwnKey) {
  LogFields f;
  f.extra = json::array({1, 2});
  json j = json::parse(
      FormatLogLine("json", kTsMs, LogLevel::kInfo, "engine", "m", f));
  EXPECT_EQ(j["extra"], json::array({1, 2}));
}

TEST(LogFormatTest, TextLineReadsLikeTheHeaderExample) {
  LogFields f;
  f.saga_id = "01JSAGA";
  f.step = "book";
  EXPECT_EQ(FormatLogLine("text", kTsMs, LogLevel::kInfo, "engine",
                          "saga completed", f),
            "2026-11-27T10:15:02.123Z INFO  engine: saga completed "
            "saga_id=01JSAGA step=book");
  EXPECT_EQ(FormatLogLine("text", kTsMs, LogLevel::kError, "api", "boom", {}),
            "2026-11-27T10:15:02.123Z ERROR api: boom");
  EXPECT_EQ(FormatLogLine("text", kTsMs, LogLevel::kWarn, "api", "w", {}),
            "2026-11-27T10:15:02.123Z WARN  api: w");
}

TEST(LogFormatTest, TextQuotesValuesWithSpacesAndKeepsOneLine) {
  LogFields f;
  f.workflow = "trip";
  f.step = "book hotel";
  f.attempt = 2;
  f.trace_id = "a=b";
  f.extra = {{"count", 3}, {"reason", "timed out"}, {"empty", ""}};
  EXPECT_EQ(FormatLogLine("text", kTsMs, LogLevel::kDebug, "engine",
                          "retry\nsoon", f),
            "2026-11-27T10:15:02.123Z DEBUG engine: retry\\nsoon "
            "workflow=trip step=\"book hotel\" attempt=2 trace_id=\"a=b\" "
            "count=3 empty=\"\" reason=\"timed out\"");
}

// ---------------------------------------------------------------------------
// ParseLogLevel.

TEST(LogLevelTest, ParsesEveryLevelName) {
  EXPECT_EQ(ParseLogLevel("trace").value(), LogLevel::kTrace);
  EXPECT_EQ(ParseLogLevel("debug").value(), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("info").value(), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("warn").value(), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("warning").value(), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("error").value(), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("off").value(), LogLevel::kOff);
}

TEST(LogLevelTest, RejectsUnknownAndWrongCaseNames) {
  for (std::string_view bad : {"INFO", "Info", "verbose", "", "err", " info"}) {
    Result<LogLevel> r = ParseLogLevel(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().IsInvalidArgument());
  }
  EXPECT_EQ(ParseLogLevel("verbose").status().message(),
            "unknown log level 'verbose' (trace, debug, info, warn, error, "
            "off)");
}

// ---------------------------------------------------------------------------
// The process logger.

TEST_F(LogTest, FileSinkWritesLinesAtOrAboveTheLevelOnly) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  ASSERT_OK(ConfigureLogging(
      {.level = LogLevel::kInfo, .format = "json", .file = path}));
  EXPECT_EQ(CurrentLogLevel(), LogLevel::kInfo);
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
  EXPECT_FALSE(LogEnabled(LogLevel::kOff));
  Log(LogLevel::kTrace, "engine", "trace line");
  Log(LogLevel::kDebug, "engine", "debug line");
  Log(LogLevel::kInfo, "engine", "info line", {.saga_id = "01JSAGA"});
  Log(LogLevel::kWarn, "engine", "warn line");
  Log(LogLevel::kError, "engine", "error line");
  Log(LogLevel::kOff, "engine", "off line");
  FlushLogs();
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(json::parse(lines[0])["msg"], "info line");
  EXPECT_EQ(json::parse(lines[0])["saga_id"], "01JSAGA");
  EXPECT_EQ(json::parse(lines[0])["level"], "info");
  EXPECT_EQ(json::parse(lines[1])["msg"], "warn line");
  EXPECT_EQ(json::parse(lines[2])["msg"], "error line");
}

TEST_F(LogTest, FileSinkAppendsToAnExistingFile) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  std::ofstream(path) << "earlier line\n";
  ASSERT_OK(ConfigureLogging({.format = "text", .file = path, .async = false}));
  Log(LogLevel::kInfo, "engine", "later line", {.step = "book"});
  FlushLogs();
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "earlier line");
  EXPECT_NE(lines[1].find(" INFO  engine: later line step=book"),
            std::string::npos)
      << lines[1];
}

TEST_F(LogTest, SetLogLevelChangesWhatIsWrittenAtRunTime) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  ASSERT_OK(ConfigureLogging({.level = LogLevel::kWarn, .file = path}));
  Log(LogLevel::kInfo, "engine", "hidden 1");
  SetLogLevel(LogLevel::kDebug);
  EXPECT_EQ(CurrentLogLevel(), LogLevel::kDebug);
  Log(LogLevel::kDebug, "engine", "shown 1");
  SetLogLevel(LogLevel::kOff);
  Log(LogLevel::kError, "engine", "hidden 2");
  SetLogLevel(LogLevel::kError);
  Log(LogLevel::kWarn, "engine", "hidden 3");
  Log(LogLevel::kError, "engine", "shown 2");
  FlushLogs();
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[0])["msg"], "shown 1");
  EXPECT_EQ(json::parse(lines[1])["msg"], "shown 2");
}

TEST_F(LogTest, AsyncModeDeliversEveryLineFromManyThreadsAfterFlush) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  ASSERT_OK(ConfigureLogging(
      {.level = LogLevel::kInfo, .file = path, .async = true}));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kPerThread; ++i) {
        Log(LogLevel::kInfo, "engine", "line \"quoted\"\n",
            {.attempt = static_cast<uint32_t>(i + 1),
             .extra = {{"thread", t}}});
      }
    });
  }
  for (auto& th : threads) th.join();
  FlushLogs();
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread));
  // Each thread's lines arrive complete and in the order it wrote them.
  std::vector<uint32_t> next(kThreads, 1);
  for (const std::string& line : lines) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << line;
    int t = j["thread"].get<int>();
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(j["attempt"].get<uint32_t>(), next[t]++);
    EXPECT_EQ(j["msg"], "line \"quoted\"\n");
  }
}

TEST_F(LogTest, BadFormatIsRejectedAndTheOldLoggerKeepsWorking) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  ASSERT_OK(ConfigureLogging({.level = LogLevel::kInfo, .file = path}));
  Status s = ConfigureLogging({.level = LogLevel::kTrace, .format = "xml"});
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(), "log.format: must be json or text");
  EXPECT_EQ(CurrentLogLevel(), LogLevel::kInfo);
  Log(LogLevel::kInfo, "engine", "still here");
  FlushLogs();
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0])["msg"], "still here");
}

TEST_F(LogTest, UnopenableFileIsAnIOErrorAndTheOldLoggerKeepsWorking) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  ASSERT_OK(ConfigureLogging({.level = LogLevel::kInfo, .file = path}));
  // A directory cannot be opened for appending, whoever runs the test.
  Status s = ConfigureLogging({.level = LogLevel::kTrace, .file = dir.path()});
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find(dir.path()), std::string::npos) << s.ToString();
  EXPECT_EQ(CurrentLogLevel(), LogLevel::kInfo);
  Log(LogLevel::kInfo, "engine", "still here");
  FlushLogs();
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0])["msg"], "still here");
}

TEST_F(LogTest, ReconfiguringWhileThreadsLogLosesNoLines) {
  TempDir dir;
  const std::string a = dir.Sub("a.log");
  const std::string b = dir.Sub("b.log");
  ASSERT_OK(ConfigureLogging({.level = LogLevel::kInfo, .file = a}));
  constexpr int kThreads = 3;
  constexpr int kPerThread = 2000;
  std::atomic<int> running{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        Log(LogLevel::kInfo, "engine", "m", {.attempt = 1});
      }
      running.fetch_sub(1);
    });
  }
  for (int round = 0; running.load() > 0; ++round) {
    ASSERT_OK(ConfigureLogging({.level = LogLevel::kInfo,
                                .file = round % 2 ? a : b,
                                .async = round % 3 != 0}));
    SetLogLevel(round % 2 ? LogLevel::kTrace : LogLevel::kInfo);
    FlushLogs();
  }
  for (auto& th : threads) th.join();
  ShutdownLogging();
  size_t total = 0;
  for (const std::string& path : {a, b}) {
    for (const std::string& line : ReadLines(path)) {
      ASSERT_FALSE(json::parse(line, nullptr, false).is_discarded()) << line;
      ++total;
    }
  }
  EXPECT_EQ(total, static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(LogTest, ShutdownReturnsToTheStderrJsonWarnDefault) {
  TempDir dir;
  const std::string path = dir.Sub("cde.log");
  ASSERT_OK(ConfigureLogging(
      {.level = LogLevel::kDebug, .format = "text", .file = path}));
  Log(LogLevel::kInfo, "engine", "to the file");
  ShutdownLogging();
  // Shutdown flushed what was queued.
  ASSERT_EQ(ReadLines(path).size(), 1u);
  EXPECT_EQ(CurrentLogLevel(), LogLevel::kWarn);

  ::testing::internal::CaptureStderr();
  Log(LogLevel::kInfo, "engine", "below warn");
  Log(LogLevel::kWarn, "engine", "after shutdown", {.step = "book"});
  FlushLogs();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(ReadLines(path).size(), 1u);
  ASSERT_FALSE(err.empty());
  ASSERT_EQ(err.back(), '\n');
  err.pop_back();
  ASSERT_EQ(err.find('\n'), std::string::npos) << err;
  json j = json::parse(err);
  EXPECT_EQ(j["msg"], "after shutdown");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["step"], "book");
}

TEST_F(LogTest, StderrSinkCanBeConfiguredToo) {
  ASSERT_OK(ConfigureLogging(
      {.level = LogLevel::kInfo, .format = "text", .async = true}));
  ::testing::internal::CaptureStderr();
  Log(LogLevel::kInfo, "api", "listening", {.extra = {{"port", 8080}}});
  FlushLogs();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(" INFO  api: listening port=8080\n"), std::string::npos)
      << err;
}

}  // namespace
}  // namespace cde
