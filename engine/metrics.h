// Metrics: counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format 0.0.4 (what a /metrics endpoint serves).
//
// A family (one metric name with its help text, type and label names) is
// registered once. Each distinct list of label values is one series of the
// family, created at zero on first use and kept for the life of the registry.
// So label values must come from a small, bounded set (workflow and step
// names, outcomes), never from saga ids or user input.
//
//   Metrics metrics;
//   auto* started = metrics.AddCounter("cde_sagas_started_total",
//                                      "Sagas started.", {"workflow"})
//                       .value();
//   started->With({"trip"}).Increment();
//   std::string text = metrics.Render();
//
// Thread safety: every method is thread-safe. Counters and gauges are single
// atomics. A histogram series takes a short lock of its own per observation,
// so that a scrape never sees a torn histogram (its +Inf bucket always equals
// its _count). Looking a series up by label values takes the family's lock;
// code on a hot path may keep the returned reference, which stays valid for
// the life of the registry.
#ifndef CDE_ENGINE_METRICS_H_
#define CDE_ENGINE_METRICS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace cde {

enum class MetricType { kCounter, kGauge, kHistogram };

// A value that only goes up (restarts at zero with the process).
class Counter {
 public:
  // `by` < 0 or NaN is ignored: a counter that went down would read as a
  // reset to Prometheus' rate().
  void Increment(double by = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets chosen at registration.
class Histogram {
 public:
  // `bounds`: the family's bucket upper bounds (ascending, +Inf implicit);
  // must outlive the histogram.
  explicit Histogram(const std::vector<double>* bounds);

  void Observe(double v);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then the +Inf bucket
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back()
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double>& bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // GUARDED_BY(mu_); per bucket, not summed
  double sum_ = 0;                // GUARDED_BY(mu_)
};

// What every family shares; Metrics renders families through it.
class MetricFamilyBase {
 public:
  virtual ~MetricFamilyBase() = default;
  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends the family's HELP, TYPE and sample lines; nothing when it has
  // no series yet.
  virtual void Render(std::string* out) const = 0;

 protected:
  MetricFamilyBase(std::string name, std::string help, MetricType type,
                   std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)) {}
  void RenderHeader(std::string* out) const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

// One family of counters, gauges or histograms.
template <typename T>
class MetricFamily final : public MetricFamilyBase {
 public:
  // Use Metrics::Add*, which checks the names and the bounds.
  MetricFamily(std::string name, std::string help,
               std::vector<std::string> label_names,
               std::vector<double> bounds = {});

  // The series with these label values, one per label name, in order.
  // REQUIRES: values.size() == label_names().size() (asserted; in release
  // builds missing values are empty and extra ones are dropped).
  T& With(std::initializer_list<std::string_view> values);

  void Render(std::string* out) const override;

 private:
  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  // Sorted by label values, so a rendering is stable from one scrape to the
  // next. Never erased: references handed out stay valid.
  // Looked up by the values as given, without a key built for each call.
  struct ValuesLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(
          a.begin(), a.end(), b.begin(), b.end(),
          [](std::string_view x, std::string_view y) { return x < y; });
    }
  };
  std::map<std::vector<std::string>, std::unique_ptr<T>, ValuesLess> series_;
};

extern template class MetricFamily<Counter>;
extern template class MetricFamily<Gauge>;
extern template class MetricFamily<Histogram>;

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

// The registry.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Register a family. A family without labels gets its one series at once,
  // so it is rendered (as zero) before its first update. InvalidArgument
  // for a name or label name Prometheus does not accept, a histogram label
  // "le", or a name starting with "process_" (AppendProcessMetrics owns
  // those); AlreadyExists if a sample name of the new family (for a
  // histogram: name_bucket, name_sum, name_count) clashes with one of a
  // registered family. The family lives as long as the registry.
  Result<CounterFamily*> AddCounter(std::string name, std::string help,
                                    std::vector<std::string> label_names = {});
  Result<GaugeFamily*> AddGauge(std::string name, std::string help,
                                std::vector<std::string> label_names = {});
  // `bounds`: the bucket upper bounds, finite and strictly increasing; the
  // +Inf bucket is always added. InvalidArgument otherwise.
  Result<HistogramFamily*> AddHistogram(std::string name, std::string help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds);

  // Every family with at least one series, sorted by name, in the text
  // exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4).
  std::string Render() const;

 private:
  Status CheckNew(const std::string& name, MetricType type,
                  const std::vector<std::string>& label_names) const;
  template <typename T>
  T* Add(std::unique_ptr<T> family);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamilyBase>> families_;
};

// Formats a sample value (or an "le" bound) so that Prometheus parses it
// back to the same double: integers without a fraction ("3"), others in the
// shortest round-trip form ("0.005", "1e-07"), "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double v);

// Appends the standard process metrics every Prometheus client exports,
// read from /proc/self: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds and process_start_time_seconds. A figure
// that cannot be read (not Linux, /proc not mounted) is left out rather than
// reported as zero.
void AppendProcessMetrics(std::string* out);

}  // namespace cde

#endif  // CDE_ENGINE_METRICS_H_
