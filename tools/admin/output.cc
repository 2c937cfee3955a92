#include "tools/admin/output.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "engine/dlq_entry.h"

namespace cde::admin {

using nlohmann::json;

void Fail(int code, const std::string& message) {
  throw AdminError(code, message);
}

void Check(const Status& s, int code) {
  if (!s.ok()) Fail(code, s.message());
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatTime(int64_t ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(ms)};
  const sys_days day = floor<days>(t);
  const year_month_day ymd(day);
  const hh_mm_ss<milliseconds> hms(t - day);
  char buf[40];
  std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
      static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
      static_cast<int>(hms.minutes().count()),
      static_cast<int>(hms.seconds().count()),
      static_cast<int>(hms.subseconds().count()));
  return buf;
}

json TimeJson(int64_t ms) {
  if (ms == 0) return nullptr;
  return FormatTime(ms);
}

json DlqJson(const DlqRecord& d) {
  json j = DlqEntryJson(d);
  j["parked_at"] = TimeJson(d.parked_ms);
  return j;
}

std::string FormatDuration(int64_t ms) {
  char buf[32];
  const char* sign = ms < 0 ? "-" : "";
  if (ms < 0) ms = -ms;
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%s%lldms", sign,
                  static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%s%.1fs", sign,
                  static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%s%lldm%02llds", sign,
                  static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else if (ms < 86'400'000) {
    std::snprintf(buf, sizeof buf, "%s%lldh%02lldm", sign,
                  static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%s%lldd%02lldh", sign,
                  static_cast<long long>(ms / 86'400'000),
                  static_cast<long long>(ms / 3'600'000 % 24));
  }
  return buf;
}

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `n` digits at `pos`.
bool Digits(std::string_view s, size_t& pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!IsDigit(s[pos + i])) return false;
    v = v * 10 + (s[pos + i] - '0');
  }
  pos += n;
  *out = v;
  return true;
}

bool Expect(std::string_view s, size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

std::optional<int64_t> ParseRelative(std::string_view s, int64_t now_ms) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    if (!IsDigit(s[pos])) return std::nullopt;
    int64_t n = 0;
    while (pos < s.size() && IsDigit(s[pos])) {
      n = n * 10 + (s[pos++] - '0');
      if (n > 1'000'000'000'000'000) return std::nullopt;
    }
    int64_t unit = 0;
    if (s.substr(pos, 2) == "ms") {
      unit = 1;
      pos += 2;
    } else if (pos < s.size()) {
      switch (s[pos]) {
        case 's':
          unit = 1000;
          break;
        case 'm':
          unit = 60'000;
          break;
        case 'h':
          unit = 3'600'000;
          break;
        case 'd':
          unit = 86'400'000;
          break;
        case 'w':
          unit = 7 * 86'400'000LL;
          break;
        default:
          return std::nullopt;
      }
      ++pos;
    } else {
      return std::nullopt;  // a number without a unit
    }
    // At most about 35,000 years: no overflow, whatever the digits.
    constexpr int64_t kMaxMs = int64_t{1} << 50;
    if (n > kMaxMs / unit || total + n * unit > kMaxMs) return std::nullopt;
    total += n * unit;
  }
  return now_ms - total;
}

std::optional<int64_t> ParseRfc3339(std::string_view s) {
  using namespace std::chrono;
  size_t pos = 0;
  int y, mo, d, h, mi, sec;
  if (!Digits(s, pos, 4, &y) || !Expect(s, pos, '-') ||
      !Digits(s, pos, 2, &mo) || !Expect(s, pos, '-') ||
      !Digits(s, pos, 2, &d)) {
    return std::nullopt;
  }
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')) {
    return std::nullopt;
  }
  ++pos;
  if (!Digits(s, pos, 2, &h) || !Expect(s, pos, ':') ||
      !Digits(s, pos, 2, &mi) || !Expect(s, pos, ':') ||
      !Digits(s, pos, 2, &sec)) {
    return std::nullopt;
  }
  int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    int64_t scale = 100;
    while (pos < s.size() && IsDigit(s[pos])) {
      frac_ms += (s[pos++] - '0') * scale;
      scale /= 10;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
  }
  int64_t offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!Digits(s, pos, 2, &oh) || !Expect(s, pos, ':') ||
        !Digits(s, pos, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_min = sign * (oh * 60 + om);
  } else {
    return std::nullopt;  // RFC 3339 requires an offset
  }
  if (pos != s.size()) return std::nullopt;
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  if (sec == 60) sec = 59;  // a leap second: the last ms of its minute
  const int64_t day_ms =
      duration_cast<milliseconds>(sys_days(ymd).time_since_epoch()).count();
  return day_ms + ((h * 60LL + mi) * 60 + sec) * 1000 + frac_ms -
         offset_min * 60'000;
}

}  // namespace

std::optional<int64_t> ParseTime(std::string_view text, int64_t now_ms) {
  if (text.size() >= 10 && text[4] == '-') return ParseRfc3339(text);
  return ParseRelative(text, now_ms);
}

bool ColourEnabled() {
  static const bool enabled =
      isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
  return enabled;
}

std::string Paint(std::string_view text, Colour c) {
  if (c == Colour::kNone || !ColourEnabled()) return std::string(text);
  const char* code = "";
  switch (c) {
    case Colour::kNone:
      break;
    case Colour::kRed:
      code = "31";
      break;
    case Colour::kGreen:
      code = "32";
      break;
    case Colour::kYellow:
      code = "33";
      break;
    case Colour::kBlue:
      code = "34";
      break;
    case Colour::kCyan:
      code = "36";
      break;
    case Colour::kDim:
      code = "2";
      break;
    case Colour::kBold:
      code = "1";
      break;
  }
  std::string out = "\x1b[";
  out += code;
  out += 'm';
  out += text;
  out += "\x1b[0m";
  return out;
}

Colour StateColour(SagaState s) {
  switch (s) {
    case SagaState::kCompleted:
      return Colour::kGreen;
    case SagaState::kRunning:
      return Colour::kCyan;
    case SagaState::kCompensating:
    case SagaState::kCancelling:
    case SagaState::kCompensated:
      return Colour::kYellow;
    case SagaState::kParked:
      return Colour::kRed;
    case SagaState::kCancelled:
      return Colour::kDim;
  }
  return Colour::kNone;
}

Colour StateColour(std::string_view state_name) {
  auto s = SagaStateFromName(state_name);
  return s ? StateColour(*s) : Colour::kNone;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<Cell> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

void Table::Print(FILE* out) const {
  std::vector<size_t> width(headers_.size(), 0);
  for (size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].text.size());
    }
  }
  auto line = [&](const std::vector<Cell>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += Paint(cells[i].text, cells[i].colour);
      if (i + 1 < cells.size()) {
        s.append(width[i] - cells[i].text.size() + 2, ' ');
      }
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::fprintf(out, "%s\n", s.c_str());
  };
  std::vector<Cell> head;
  for (const auto& h : headers_) head.emplace_back(h, Colour::kBold);
  line(head);
  for (const auto& row : rows_) line(row);
}

void PrintJson(const json& doc) {
  std::fputs(doc.dump(2).c_str(), stdout);
  std::fputc('\n', stdout);
}

std::string FormatBytes(uint64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B",
                  static_cast<unsigned long long>(bytes));
  } else if (bytes < (1ULL << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  } else if (bytes < (1ULL << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1 << 30));
  }
  return buf;
}

std::string Shorten(std::string_view text, size_t max) {
  std::string s;
  for (char c : text) s.push_back(c == '\n' || c == '\t' ? ' ' : c);
  if (s.size() <= max) return s;
  s.resize(max > 3 ? max - 3 : 0);
  return s + "...";
}

Progress::Progress(size_t phases)
    : enabled_(isatty(STDERR_FILENO) == 1), phases_(phases) {}

Progress::~Progress() { Done(); }

void Progress::Update(size_t phase, std::string_view label, uint64_t rows) {
  if (!enabled_) return;
  const int64_t now = NowMs();
  if (drawn_ && now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  constexpr size_t kWidth = 30;
  const size_t filled = phases_ == 0 ? kWidth : kWidth * phase / phases_;
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  std::fprintf(stderr, "\r\x1b[K[%s] %zu/%zu %.*s: %llu rows", bar.c_str(),
               phase + 1, phases_, static_cast<int>(label.size()), label.data(),
               static_cast<unsigned long long>(rows));
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Done() {
  if (enabled_ && drawn_) {
    std::fputs("\r\x1b[K", stderr);
    std::fflush(stderr);
  }
  drawn_ = false;
}

}  // namespace cde::admin
