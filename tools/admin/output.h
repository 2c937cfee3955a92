// cde-admin: errors and exit codes, time parsing and formatting, and the
// human output (aligned tables, colour on a TTY) shared by every command.
#ifndef CDE_TOOLS_ADMIN_OUTPUT_H_
#define CDE_TOOLS_ADMIN_OUTPUT_H_

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "storage/records.h"
#include "storage/status.h"

namespace cde::admin {

// Exit codes (docs/cde-admin.md).
inline constexpr int kExitOk = 0;
// Not found, problems found by verify, a store error while reading.
inline constexpr int kExitFailed = 1;
// Bad arguments, a data dir that is not a store or of a newer format.
inline constexpr int kExitUsage = 2;
// Refused because a server holds the store (backup of a live store).
inline constexpr int kExitLive = 3;
// --follow ended by Ctrl-C.
inline constexpr int kExitInterrupted = 130;

// Thrown by commands; main prints "cde-admin: <what()>" on stderr (one line)
// and exits with `code`.
class AdminError : public std::runtime_error {
 public:
  AdminError(int code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

[[noreturn]] void Fail(int code, const std::string& message);
// Fails with `code` and the status message (without its code name) unless
// `s` is OK.
void Check(const Status& s, int code = kExitFailed);
template <typename T>
T Check(Result<T> r, int code = kExitFailed) {
  Check(r.status(), code);
  return std::move(r).value();
}

// Options every command takes.
struct Common {
  std::string data_dir = "./cde-data";
  bool json = false;
};

// --- time ---
int64_t NowMs();
// RFC 3339 in UTC with milliseconds: "2026-11-27T08:00:00.123Z".
std::string FormatTime(int64_t ms);
// A short duration: "850ms", "12.3s", "5m02s", "3h04m", "2d03h".
std::string FormatDuration(int64_t ms);
// RFC 3339 ("2026-11-27T08:00:00Z", "...T08:00:00.5+02:00") or a time ago
// ("90s", "15m", "2h", "3d", "1w", "1h30m"). nullopt if malformed.
std::optional<int64_t> ParseTime(std::string_view text, int64_t now_ms);
// A time for JSON: the RFC 3339 string, or null for 0.
nlohmann::json TimeJson(int64_t ms);
// A DLQ entry: the one every surface shows (engine/dlq_entry.h), with its
// park time also as text (`parked_at`).
nlohmann::json DlqJson(const DlqRecord& d);

// --- human output ---
enum class Colour { kNone, kRed, kGreen, kYellow, kBlue, kCyan, kDim, kBold };
// True when stdout is a terminal and NO_COLOR is not set.
bool ColourEnabled();
// `text` wrapped in the colour's escape codes when colour is enabled.
std::string Paint(std::string_view text, Colour c);
Colour StateColour(SagaState s);
Colour StateColour(std::string_view state_name);

struct Cell {
  std::string text;
  Colour colour = Colour::kNone;
  Cell(std::string t = "", Colour c = Colour::kNone)  // NOLINT: implicit
      : text(std::move(t)), colour(c) {}
  Cell(const char* t, Colour c = Colour::kNone)  // NOLINT: implicit
      : text(t), colour(c) {}
};

// Columns padded to their widest cell (header included); the last column is
// not padded. Headers are bold when colour is on.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<Cell> row);
  bool empty() const { return rows_.empty(); }
  void Print(FILE* out = stdout) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<Cell>> rows_;
};

// One JSON document on stdout, indented, with a final newline.
void PrintJson(const nlohmann::json& doc);

// Bytes as "512 B", "12.3 KiB", "4.0 MiB", "1.2 GiB".
std::string FormatBytes(uint64_t bytes);

// `text` cut to `max` characters with a trailing "..." when longer.
std::string Shorten(std::string_view text, size_t max);

// Progress on stderr for long scans, drawn only when stderr is a terminal;
// at most ten redraws a second; Done() erases it.
class Progress {
 public:
  explicit Progress(size_t phases);
  ~Progress();
  void Update(size_t phase, std::string_view label, uint64_t rows);
  void Done();

 private:
  bool enabled_;
  size_t phases_;
  int64_t last_draw_ms_ = 0;
  bool drawn_ = false;
};

}  // namespace cde::admin

#endif  // CDE_TOOLS_ADMIN_OUTPUT_H_
