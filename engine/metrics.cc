#include "engine/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <type_traits>

namespace cde {
namespace {

// Label values may hold anything; the format escapes exactly these three.
void AppendEscapedLabelValue(std::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '"':
        out->append("\\\"");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(c);
    }
  }
}

// HELP text escapes backslash and line feed, but not quotes.
void AppendEscapedHelp(std::string_view v, std::string* out) {
  for (char c : v) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

// `name{a="x",b="y",le="0.5"} value\n`; `extra` is one more label pair
// (the histogram's "le"), or empty.
void AppendSample(std::string* out, const std::string& name,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& values,
                  std::string_view extra_name, std::string_view extra_value,
                  double value) {
  out->append(name);
  const bool labelled = !label_names.empty() || !extra_name.empty();
  if (labelled) {
    out->push_back('{');
    bool first = true;
    auto pair = [&](std::string_view n, std::string_view v) {
      if (!first) out->push_back(',');
      first = false;
      out->append(n);
      out->append("=\"");
      AppendEscapedLabelValue(v, out);
      out->push_back('"');
    };
    for (size_t i = 0; i < label_names.size(); ++i) {
      pair(label_names[i], values[i]);
    }
    if (!extra_name.empty()) pair(extra_name, extra_value);
    out->push_back('}');
  }
  out->push_back(' ');
  out->append(FormatMetricValue(value));
  out->push_back('\n');
}

bool ValidMetricName(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Label names starting with "__" are reserved for Prometheus itself.
bool ValidLabelName(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// The names a family's lines carry: two families must not share any.
std::vector<std::string> SampleNames(const std::string& name, MetricType type) {
  if (type != MetricType::kHistogram) return {name};
  return {name, name + "_bucket", name + "_sum", name + "_count"};
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

template <typename T>
constexpr MetricType TypeOf() {
  if constexpr (std::is_same_v<T, Counter>) {
    return MetricType::kCounter;
  } else if constexpr (std::is_same_v<T, Gauge>) {
    return MetricType::kGauge;
  } else {
    return MetricType::kHistogram;
  }
}

}  // namespace

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values (the common case: counts) print as integers; below
  // 2^53 every integer is exact in a double. -0 prints as "0".
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  // The shortest form that reads back as the same double ("0.005",
  // "1e-07", "1.5e+300"): all of these are valid Go ParseFloat input.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void Counter::Increment(double by) {
  if (!(by >= 0)) return;
  value_.fetch_add(by, std::memory_order_relaxed);
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(*bounds), counts_(bounds->size() + 1, 0) {}

void Histogram::Observe(double v) {
  // A NaN would turn _sum into NaN for good; it is no observation.
  if (std::isnan(v)) return;
  // The first bucket whose upper bound is >= v ("le": less or equal).
  const size_t i = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  std::lock_guard lock(mu_);
  s.cumulative.reserve(counts_.size());
  for (uint64_t c : counts_) {
    s.count += c;
    s.cumulative.push_back(s.count);
  }
  s.sum = sum_;
  return s;
}

void MetricFamilyBase::RenderHeader(std::string* out) const {
  out->append("# HELP ").append(name_).push_back(' ');
  AppendEscapedHelp(help_, out);
  out->append("\n# TYPE ").append(name_).push_back(' ');
  out->append(TypeName(type_)).push_back('\n');
}

template <typename T>
MetricFamily<T>::MetricFamily(std::string name, std::string help,
                              std::vector<std::string> label_names,
                              std::vector<double> bounds)
    : MetricFamilyBase(std::move(name), std::move(help), TypeOf<T>(),
                       std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <typename T>
T& MetricFamily<T>::With(std::initializer_list<std::string_view> values) {
  assert(values.size() == label_names_.size() &&
         "one label value per label name");
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  if (it == series_.end()) {
    std::vector<std::string> key(values.begin(), values.end());
    key.resize(label_names_.size());
    it = series_.find(key);
    if (it == series_.end()) {
      std::unique_ptr<T> series;
      if constexpr (std::is_same_v<T, Histogram>) {
        series = std::make_unique<Histogram>(&bounds_);
      } else {
        series = std::make_unique<T>();
      }
      it = series_.emplace(std::move(key), std::move(series)).first;
    }
  }
  return *it->second;
}

template <typename T>
void MetricFamily<T>::Render(std::string* out) const {
  std::lock_guard lock(mu_);
  if (series_.empty()) return;
  RenderHeader(out);
  for (const auto& [values, series] : series_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const Histogram::Snapshot s = series->snapshot();
      const std::string bucket = name_ + "_bucket";
      for (size_t i = 0; i < bounds_.size(); ++i) {
        AppendSample(out, bucket, label_names_, values, "le",
                     FormatMetricValue(bounds_[i]),
                     static_cast<double>(s.cumulative[i]));
      }
      AppendSample(out, bucket, label_names_, values, "le", "+Inf",
                   static_cast<double>(s.count));
      AppendSample(out, name_ + "_sum", label_names_, values, "", "", s.sum);
      AppendSample(out, name_ + "_count", label_names_, values, "", "",
                   static_cast<double>(s.count));
    } else {
      AppendSample(out, name_, label_names_, values, "", "", series->value());
    }
  }
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

Metrics::Metrics() = default;
Metrics::~Metrics() = default;

Status Metrics::CheckNew(const std::string& name, MetricType type,
                         const std::vector<std::string>& label_names) const {
  if (!ValidMetricName(name)) {
    return Status::InvalidArgument("metric name '" + name +
                                   "' is not [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  if (name.starts_with("process_")) {
    return Status::InvalidArgument("metric name '" + name +
                                   "': process_* belongs to "
                                   "AppendProcessMetrics");
  }
  std::set<std::string> seen;
  for (const std::string& l : label_names) {
    if (!ValidLabelName(l)) {
      return Status::InvalidArgument(
          "metric " + name + ": label name '" + l +
          "' is not [a-zA-Z_][a-zA-Z0-9_]* or starts with __");
    }
    if (type == MetricType::kHistogram && l == "le") {
      return Status::InvalidArgument("histogram " + name +
                                     ": label 'le' is reserved for buckets");
    }
    if (!seen.insert(l).second) {
      return Status::InvalidArgument("metric " + name + ": label '" + l +
                                     "' given twice");
    }
  }
  // mu_ is held by the caller.
  for (const std::string& mine : SampleNames(name, type)) {
    for (const auto& [other, family] : families_) {
      for (const std::string& theirs : SampleNames(other, family->type())) {
        if (mine == theirs) {
          return Status::AlreadyExists("metric " + name + ": '" + mine +
                                       "' is already a sample of " + other);
        }
      }
    }
  }
  return Status::OK();
}

template <typename T>
T* Metrics::Add(std::unique_ptr<T> family) {
  // mu_ is held by the caller.
  T* raw = family.get();
  if (family->label_names().empty()) raw->With({});
  families_[raw->name()] = std::move(family);
  return raw;
}

Result<CounterFamily*> Metrics::AddCounter(
    std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  CDE_RETURN_IF_ERROR(CheckNew(name, MetricType::kCounter, label_names));
  return Add(std::make_unique<CounterFamily>(std::move(name), std::move(help),
                                             std::move(label_names)));
}

Result<GaugeFamily*> Metrics::AddGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  CDE_RETURN_IF_ERROR(CheckNew(name, MetricType::kGauge, label_names));
  return Add(std::make_unique<GaugeFamily>(std::move(name), std::move(help),
                                           std::move(label_names)));
}

Result<HistogramFamily*> Metrics::AddHistogram(
    std::string name, std::string help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
      return Status::InvalidArgument(
          "histogram " + name +
          ": bucket bounds must be finite and strictly increasing (+Inf is "
          "implicit)");
    }
  }
  std::lock_guard lock(mu_);
  CDE_RETURN_IF_ERROR(CheckNew(name, MetricType::kHistogram, label_names));
  return Add(std::make_unique<HistogramFamily>(std::move(name), std::move(help),
                                               std::move(label_names),
                                               std::move(bounds)));
}

std::string Metrics::Render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, family] : families_) family->Render(&out);
  return out;
}

namespace {

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void AppendProcessMetric(std::string* out, const char* name, const char* type,
                         const char* help, double value) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out->append(name).append(" ").append(FormatMetricValue(value)).append("\n");
}

}  // namespace

void AppendProcessMetrics(std::string* out) {
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  // /proc/self/stat: "pid (comm) state ppid ...". comm may hold spaces and
  // parentheses, so the fields are counted from the last ')'.
  const std::string stat = ReadSmallFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  std::vector<std::string> f;  // f[0] is field 3 (state)
  if (paren != std::string::npos) {
    std::istringstream rest(stat.substr(paren + 1));
    for (std::string field; rest >> field;) f.push_back(field);
  }
  auto field = [&f](size_t n) {  // 1-based, as proc(5) numbers them
    return std::strtod(f[n - 3].c_str(), nullptr);
  };
  const bool have_stat = f.size() >= 22 && ticks > 0 && page > 0;
  if (have_stat) {
    AppendProcessMetric(out, "process_cpu_seconds_total", "counter",
                        "Total user and system CPU time spent in seconds.",
                        (field(14) + field(15)) / static_cast<double>(ticks));
  }
  DIR* dir = opendir("/proc/self/fd");
  if (dir != nullptr) {
    double fds = 0;
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(dir);
    // Less the descriptor that reads the directory itself.
    AppendProcessMetric(out, "process_open_fds", "gauge",
                        "Number of open file descriptors.",
                        std::max(0.0, fds - 1));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    AppendProcessMetric(out, "process_max_fds", "gauge",
                        "Maximum number of open file descriptors.",
                        static_cast<double>(limit.rlim_cur));
  }
  if (have_stat) {
    AppendProcessMetric(out, "process_resident_memory_bytes", "gauge",
                        "Resident memory size in bytes.",
                        field(24) * static_cast<double>(page));
  }
  // Start time: boot time (btime in /proc/stat) plus the start in ticks
  // since boot (field 22).
  std::istringstream proc_stat(ReadSmallFile("/proc/stat"));
  double btime = -1;
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.starts_with("btime "))
      btime = std::strtod(line.c_str() + 6, nullptr);
  }
  if (have_stat && btime >= 0) {
    AppendProcessMetric(
        out, "process_start_time_seconds", "gauge",
        "Start time of the process since unix epoch in seconds.",
        btime + field(22) / static_cast<double>(ticks));
  }
  if (have_stat) {
    AppendProcessMetric(out, "process_virtual_memory_bytes", "gauge",
                        "Virtual memory size in bytes.", field(23));
  }
}

}  // namespace cde
