// A strict parser of the Prometheus text exposition format 0.0.4, for tests
// of what /metrics serves. Header-only so that any test target can use it.
//
// Stricter than Prometheus where the format leaves room, so that output that
// passes here is accepted by every scraper:
//   - every sample needs a preceding TYPE line for its family (no implicit
//     "untyped"), and a family's lines are contiguous;
//   - at most one HELP and one TYPE per family, both before its samples;
//   - label values and HELP text use only the escapes the format defines
//     (\\ \" \n in label values; \\ \n in HELP);
//   - no duplicate series (same name and label set, in any label order), no
//     label twice in one sample;
//   - values are decimal floats, "+Inf", "-Inf", "Inf" or "NaN";
//     timestamps are integers; counters are never negative;
//   - every histogram series has _bucket lines with "le" in strictly
//     increasing order, cumulative (non-decreasing) counts, a "+Inf"
//     bucket, a _sum and a _count equal to the +Inf bucket;
//   - the text ends with a line feed.
#ifndef CDE_TESTS_ENGINE_PROMETHEUS_PARSER_H_
#define CDE_TESTS_ENGINE_PROMETHEUS_PARSER_H_

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace cde::test {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
  std::optional<int64_t> timestamp_ms;
};

struct PromFamily {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::optional<std::string> help;
  std::vector<PromSample> samples;
};

struct PromExposition {
  std::vector<PromFamily> families;  // in the order of the text

  const PromFamily* Find(std::string_view name) const {
    for (const PromFamily& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
  // The value of sample `name` with exactly `labels`; nullopt if absent.
  std::optional<double> Value(
      std::string_view name,
      const std::map<std::string, std::string>& labels = {}) const {
    for (const PromFamily& f : families) {
      for (const PromSample& s : f.samples) {
        if (s.name == name && s.labels == labels) return s.value;
      }
    }
    return std::nullopt;
  }
};

namespace prom_internal {

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

inline bool IsMetricNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':' || (!first && c >= '0' && c <= '9');
}

inline bool IsLabelNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

inline bool ValidMetricName(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!IsMetricNameChar(n[i], i == 0)) return false;
  }
  return true;
}

// A float as Go's strconv.ParseFloat reads it, limited to the forms a
// well-behaved exporter writes.
inline std::optional<double> ParseValue(std::string_view t) {
  if (t == "+Inf" || t == "Inf") return HUGE_VAL;
  if (t == "-Inf") return -HUGE_VAL;
  if (t == "NaN") return std::nan("");
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  size_t digits = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i, ++digits;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    size_t exp = 0;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i, ++exp;
    if (exp == 0) return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  return std::strtod(std::string(t).c_str(), nullptr);
}

inline std::optional<int64_t> ParseTimestamp(std::string_view t) {
  size_t i = t.starts_with('-') ? 1 : 0;
  if (i == t.size() || t.size() > 20) return std::nullopt;
  for (size_t j = i; j < t.size(); ++j) {
    if (t[j] < '0' || t[j] > '9') return std::nullopt;
  }
  return std::strtoll(std::string(t).c_str(), nullptr, 10);
}

// HELP text: \\ and \n are the only escapes.
inline Result<std::string> UnescapeHelp(std::string_view t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '\\') {
      out.push_back(t[i]);
      continue;
    }
    if (++i == t.size()) return Status::InvalidArgument("HELP ends in '\\'");
    if (t[i] == '\\') {
      out.push_back('\\');
    } else if (t[i] == 'n') {
      out.push_back('\n');
    } else {
      return Status::InvalidArgument(std::string("bad escape '\\") + t[i] +
                                     "' in HELP");
    }
  }
  return out;
}

// The series of a histogram: its labels without "le".
struct HistogramSeries {
  std::vector<std::pair<double, double>> buckets;  // (le, count) in order
  std::optional<double> sum;
  std::optional<double> count;
};

inline Status CheckHistogram(const PromFamily& f) {
  std::map<std::map<std::string, std::string>, HistogramSeries> series;
  for (const PromSample& s : f.samples) {
    auto labels = s.labels;
    labels.erase("le");
    HistogramSeries& h = series[labels];
    if (s.name == f.name + "_bucket") {
      auto le = s.labels.find("le");
      if (le == s.labels.end()) {
        return Status::InvalidArgument(f.name + "_bucket without an le label");
      }
      auto bound = ParseValue(le->second);
      if (!bound || std::isnan(*bound)) {
        return Status::InvalidArgument(f.name + ": le=\"" + le->second +
                                       "\" is not a number");
      }
      if (!h.buckets.empty() && !(h.buckets.back().first < *bound)) {
        return Status::InvalidArgument(f.name + ": le=\"" + le->second +
                                       "\" is not above the previous bucket");
      }
      if (!h.buckets.empty() && s.value < h.buckets.back().second) {
        return Status::InvalidArgument(f.name + ": bucket le=\"" + le->second +
                                       "\" counts less than the previous "
                                       "one: buckets are not cumulative");
      }
      h.buckets.emplace_back(*bound, s.value);
    } else if (s.labels.count("le") != 0) {
      return Status::InvalidArgument(s.name + " has an le label");
    } else if (s.name == f.name + "_sum") {
      h.sum = s.value;
    } else if (s.name == f.name + "_count") {
      h.count = s.value;
    }
  }
  for (const auto& [labels, h] : series) {
    if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) {
      return Status::InvalidArgument(f.name + ": a series has no +Inf bucket");
    }
    if (!h.sum)
      return Status::InvalidArgument(f.name + ": a series has no _sum");
    if (!h.count) {
      return Status::InvalidArgument(f.name + ": a series has no _count");
    }
    if (*h.count != h.buckets.back().second) {
      return Status::InvalidArgument(f.name +
                                     ": _count differs from the +Inf bucket");
    }
  }
  return Status::OK();
}

}  // namespace prom_internal

inline Result<PromExposition> ParsePrometheusText(std::string_view text) {
  namespace pi = prom_internal;
  PromExposition out;
  if (!text.empty() && text.back() != '\n') {
    return Status::InvalidArgument("the text does not end with a line feed");
  }
  std::set<std::string> closed;  // families whose lines have ended
  std::set<std::string> series_seen;
  PromFamily* current = nullptr;
  size_t line_no = 0;
  auto family = [&](const std::string& name) -> Result<PromFamily*> {
    if (current != nullptr && current->name == name) return current;
    if (current != nullptr) closed.insert(current->name);
    if (closed.count(name) != 0) {
      return Status::InvalidArgument("the lines of family " + name +
                                     " are not contiguous");
    }
    out.families.push_back(PromFamily{name, "", std::nullopt, {}});
    current = &out.families.back();
    return current;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    auto fail = [line_no](const std::string& why) {
      return Status::InvalidArgument("line " + std::to_string(line_no) + ": " +
                                     why);
    };
    while (!line.empty() && pi::IsBlank(line.front())) line.remove_prefix(1);
    while (!line.empty() && pi::IsBlank(line.back())) line.remove_suffix(1);
    if (line.empty()) continue;

    if (line.front() == '#') {
      std::string_view rest = line.substr(1);
      while (!rest.empty() && pi::IsBlank(rest.front())) rest.remove_prefix(1);
      const bool help = rest.starts_with("HELP") &&
                        (rest.size() == 4 || pi::IsBlank(rest[4]));
      const bool type = rest.starts_with("TYPE") &&
                        (rest.size() == 4 || pi::IsBlank(rest[4]));
      if (!help && !type) continue;  // a comment
      rest.remove_prefix(4);
      while (!rest.empty() && pi::IsBlank(rest.front())) rest.remove_prefix(1);
      size_t n = 0;
      while (n < rest.size() && !pi::IsBlank(rest[n])) ++n;
      const std::string name(rest.substr(0, n));
      if (!pi::ValidMetricName(name)) {
        return fail("bad metric name '" + name + "'");
      }
      std::string_view arg = rest.substr(n);
      if (!arg.empty()) arg.remove_prefix(1);  // the one separating blank
      auto f = family(name);
      if (!f.ok()) return fail(f.status().message());
      PromFamily& fam = **f;
      if (!fam.samples.empty()) {
        return fail(std::string(help ? "HELP" : "TYPE") + " for " + name +
                    " after its samples");
      }
      if (help) {
        if (fam.help) return fail("second HELP for " + name);
        auto text_or = pi::UnescapeHelp(arg);
        if (!text_or.ok()) return fail(text_or.status().message());
        fam.help = *text_or;
      } else {
        while (!arg.empty() && pi::IsBlank(arg.front())) arg.remove_prefix(1);
        if (!fam.type.empty()) return fail("second TYPE for " + name);
        static const std::set<std::string_view> kTypes = {
            "counter", "gauge", "histogram", "summary", "untyped"};
        if (kTypes.count(arg) == 0) {
          return fail("bad type '" + std::string(arg) + "'");
        }
        fam.type = std::string(arg);
      }
      continue;
    }

    // A sample: name [{labels}] value [timestamp]
    PromSample s;
    size_t i = 0;
    while (i < line.size() && pi::IsMetricNameChar(line[i], i == 0)) ++i;
    s.name = std::string(line.substr(0, i));
    if (s.name.empty()) return fail("no metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        const size_t start = i;
        while (i < line.size() && pi::IsLabelNameChar(line[i], i == start)) {
          ++i;
        }
        const std::string label(line.substr(start, i - start));
        if (label.empty()) return fail("bad label name");
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          return fail("label " + label + " is not followed by =\"");
        }
        i += 2;
        std::string value;
        bool closed_quote = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed_quote = true;
            break;
          }
          if (c != '\\') {
            value.push_back(c);
            continue;
          }
          if (i == line.size()) break;
          const char e = line[i++];
          if (e == '\\') {
            value.push_back('\\');
          } else if (e == '"') {
            value.push_back('"');
          } else if (e == 'n') {
            value.push_back('\n');
          } else {
            return fail(std::string("bad escape '\\") + e + "' in label " +
                        label);
          }
        }
        if (!closed_quote) return fail("unterminated value of label " + label);
        if (!s.labels.emplace(label, std::move(value)).second) {
          return fail("label " + label + " given twice");
        }
        if (i < line.size() && line[i] == ',') {
          ++i;
        } else if (i >= line.size() || line[i] != '}') {
          return fail("expected , or } after label " + label);
        }
      }
    }
    if (i >= line.size() || !pi::IsBlank(line[i])) {
      return fail("expected a blank and a value after " + s.name);
    }
    std::vector<std::string_view> tokens;
    while (i < line.size()) {
      while (i < line.size() && pi::IsBlank(line[i])) ++i;
      const size_t start = i;
      while (i < line.size() && !pi::IsBlank(line[i])) ++i;
      if (i > start) tokens.push_back(line.substr(start, i - start));
    }
    if (tokens.empty() || tokens.size() > 2) {
      return fail("expected a value and an optional timestamp");
    }
    auto value = pi::ParseValue(tokens[0]);
    if (!value) return fail("bad value '" + std::string(tokens[0]) + "'");
    s.value = *value;
    if (tokens.size() == 2) {
      s.timestamp_ms = pi::ParseTimestamp(tokens[1]);
      if (!s.timestamp_ms) {
        return fail("bad timestamp '" + std::string(tokens[1]) + "'");
      }
    }

    // The family: the sample's own name, or the histogram/summary it is a
    // _bucket, _sum or _count of.
    std::string fam_name = s.name;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (s.name.ends_with(suffix)) {
        const std::string base =
            s.name.substr(0, s.name.size() - suffix.size());
        const PromFamily* b = current != nullptr && current->name == base
                                  ? current
                                  : out.Find(base);
        if (b != nullptr && (b->type == "histogram" ||
                             (b->type == "summary" && suffix != "_bucket"))) {
          fam_name = base;
        }
      }
    }
    auto f = family(fam_name);
    if (!f.ok()) return fail(f.status().message());
    PromFamily& fam = **f;
    if (fam.type.empty()) return fail(s.name + " has no preceding TYPE line");
    if (fam.type == "histogram" && fam_name == s.name) {
      return fail("histogram " + fam_name +
                  " has a sample without _bucket/_sum/_count");
    }
    if (fam.type == "summary" && fam_name == s.name &&
        s.labels.count("quantile") == 0) {
      return fail("summary " + fam_name + " sample without a quantile");
    }
    if (fam.type == "counter" && !(s.value >= 0)) {
      return fail("counter " + s.name + " is negative or NaN");
    }
    std::string key = s.name + "{";
    for (const auto& [k, v] : s.labels) key += k + "=\"" + v + "\"\x01";
    if (!series_seen.insert(key).second) {
      return fail("duplicate series " + s.name);
    }
    fam.samples.push_back(std::move(s));
  }
  for (const PromFamily& f : out.families) {
    if (f.type == "histogram") {
      Status s = pi::CheckHistogram(f);
      if (!s.ok()) return s;
    }
  }
  return out;
}

}  // namespace cde::test

#endif  // CDE_TESTS_ENGINE_PROMETHEUS_PARSER_H_
