// The metrics registry and its text format (checked by a strict parser of
// the Prometheus text format 0.0.4, itself tested first), and the engine's
// metrics end to end: the figures a dashboard or an alert relies on.
#include "engine/metrics.h"

#include <gmock/gmock.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <thread>

#include "tests/engine/engine_harness.h"
#include "tests/engine/prometheus_parser.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;
using test::ParsePrometheusText;
using test::PromExposition;
using Labels = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------
// The parser: what it accepts and what it must reject.

TEST(PrometheusParserTest, AcceptsTheFormatsFeatures) {
  const std::string text = R"(# A comment, then a blank line.

# HELP http_requests_total The total number of HTTP requests.\nTwo lines, a \\.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400",}    3   1395066363000
# TYPE temperature gauge
# HELP temperature No samples need follow a HELP line before TYPE.
temperature -Inf
	 # TYPE rpc_duration_seconds histogram
rpc_duration_seconds_bucket{le="0.05"} 24054
rpc_duration_seconds_bucket{le="0.1"} 33444
rpc_duration_seconds_bucket{le="+Inf"} 144320
rpc_duration_seconds_sum 53423
rpc_duration_seconds_count 144320
# TYPE odd gauge
odd{path="C:\\dir\"x\"\nnext"} 1.5e-07
)";
  auto parsed = ParsePrometheusText(text);
  ASSERT_OK(parsed.status());
  ASSERT_EQ(parsed->families.size(), 4u);
  EXPECT_EQ(parsed->families[0].help,
            "The total number of HTTP requests.\nTwo lines, a \\.");
  EXPECT_EQ(parsed->Value("http_requests_total",
                          {{"method", "post"}, {"code", "400"}}),
            3);
  EXPECT_EQ(parsed->families[0].samples[0].timestamp_ms, 1395066363000);
  EXPECT_EQ(parsed->Value("temperature"), -HUGE_VAL);
  EXPECT_EQ(parsed->Value("rpc_duration_seconds_bucket", {{"le", "+Inf"}}),
            144320);
  EXPECT_EQ(parsed->Value("odd", {{"path", "C:\\dir\"x\"\nnext"}}), 1.5e-07);
}

// Each case is valid but for one fault.
struct BadText {
  const char* why;
  const char* expect;  // in the error message
  const char* text;
};

class PrometheusParserRejects : public ::testing::TestWithParam<BadText> {};

TEST_P(PrometheusParserRejects, TheText) {
  auto parsed = ParsePrometheusText(GetParam().text);
  ASSERT_FALSE(parsed.ok()) << GetParam().why << " was accepted:\n"
                            << GetParam().text;
  EXPECT_THAT(parsed.status().message(),
              ::testing::HasSubstr(GetParam().expect))
      << GetParam().why;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, PrometheusParserRejects,
    ::testing::Values(
        BadText{"no final line feed", "line feed", "# TYPE x counter\nx 1"},
        BadText{"no value", "expected a blank and a value",
                "# TYPE x counter\nx\n"},
        BadText{"no blank before the value", "expected a blank and a value",
                "# TYPE x gauge\nx{a=\"1\"}1\n"},
        BadText{"a word as value", "bad value", "# TYPE x gauge\nx one\n"},
        BadText{"a half exponent", "bad value", "# TYPE x gauge\nx 1e\n"},
        BadText{"lower-case inf", "bad value", "# TYPE x gauge\nx +inf\n"},
        BadText{"a fractional timestamp", "bad timestamp",
                "# TYPE x gauge\nx 1 1.5\n"},
        BadText{"a third token", "optional timestamp",
                "# TYPE x gauge\nx 1 2 3\n"},
        BadText{"a bad metric name", "bad metric name",
                "# TYPE 1x gauge\n1x 1\n"},
        BadText{"a bad name in TYPE", "bad metric name",
                "# TYPE x-y gauge\nx 1\n"},
        BadText{"an unknown type", "bad type", "# TYPE x counters\nx 1\n"},
        BadText{"two TYPE lines", "second TYPE",
                "# TYPE x gauge\n# TYPE x gauge\nx 1\n"},
        BadText{"two HELP lines", "second HELP",
                "# HELP x a\n# HELP x b\n# TYPE x gauge\nx 1\n"},
        BadText{"TYPE after the samples", "after its samples",
                "# TYPE x gauge\nx 1\n# TYPE x gauge\n"},
        BadText{"HELP after the samples", "after its samples",
                "# TYPE x gauge\nx 1\n# HELP x h\n"},
        BadText{"an unknown escape in HELP", "bad escape", "# HELP x a\\tb\n"},
        BadText{"a negative counter", "negative", "# TYPE x counter\nx -1\n"},
        BadText{"a NaN counter", "negative or NaN",
                "# TYPE x counter\nx NaN\n"},
        BadText{"an unquoted label value", "not followed by",
                "# TYPE x gauge\nx{a=1} 1\n"},
        BadText{"an unterminated label value", "unterminated",
                "# TYPE x gauge\nx{a=\"1} 1\n"},
        BadText{"an unclosed label set", "expected , or }",
                "# TYPE x gauge\nx{a=\"1\" 1\n"},
        BadText{"a blank inside the label set", "bad label name",
                "# TYPE x gauge\nx{a=\"1\", b=\"2\"} 1\n"},
        BadText{"a bad label name", "bad label name",
                "# TYPE x gauge\nx{1a=\"1\"} 1\n"},
        BadText{"a label given twice", "given twice",
                "# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n"}));

INSTANTIATE_TEST_SUITE_P(
    BadEscaping, PrometheusParserRejects,
    ::testing::Values(BadText{"an escaped tab", "bad escape",
                              "# TYPE x gauge\nx{a=\"\\t\"} 1\n"},
                      BadText{"an escaped quote ending the value",
                              "unterminated",
                              "# TYPE x gauge\nx{a=\"\\\"} 1\n"},
                      BadText{"a bare quote inside", "expected , or }",
                              "# TYPE x gauge\nx{a=\"a\"b\"} 1\n"},
                      BadText{"a lone backslash at the end", "unterminated",
                              "# TYPE x gauge\nx{a=\"\\\n"}));

INSTANTIATE_TEST_SUITE_P(
    NoType, PrometheusParserRejects,
    ::testing::Values(BadText{"a sample alone", "no preceding TYPE", "x 1\n"},
                      BadText{"HELP but no TYPE", "no preceding TYPE",
                              "# HELP x h\nx 1\n"},
                      BadText{"another family's TYPE", "no preceding TYPE",
                              "# TYPE y gauge\nx 1\n"},
                      BadText{"_count of a gauge family", "no preceding TYPE",
                              "# TYPE x gauge\nx_count 1\n"}));

INSTANTIATE_TEST_SUITE_P(
    DuplicatesAndOrder, PrometheusParserRejects,
    ::testing::Values(
        BadText{"the same series twice", "duplicate series",
                "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n"},
        BadText{"the same series, labels reordered", "duplicate series",
                "# TYPE x gauge\nx{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 2\n"},
        BadText{"the same unlabelled series", "duplicate series",
                "# TYPE x gauge\nx 1\nx 2\n"},
        BadText{"a family split in two", "not contiguous",
                "# TYPE x gauge\nx{a=\"1\"} 1\n# TYPE y gauge\ny 1\n"
                "x{a=\"2\"} 1\n"}));

// A histogram with one fault each.
INSTANTIATE_TEST_SUITE_P(
    Histograms, PrometheusParserRejects,
    ::testing::Values(
        BadText{"non-cumulative buckets", "not cumulative",
                "# TYPE h histogram\nh_bucket{le=\"1\"} 5\n"
                "h_bucket{le=\"2\"} 4\nh_bucket{le=\"+Inf\"} 5\n"
                "h_sum 3\nh_count 5\n"},
        BadText{"no +Inf bucket", "no +Inf",
                "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_sum 3\n"
                "h_count 5\n"},
        BadText{"no _sum", "no _sum",
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 5\n"},
        BadText{"no _count", "no _count",
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_sum 3\n"},
        BadText{"_count differs from +Inf", "differs",
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_sum 3\n"
                "h_count 6\n"},
        BadText{"a bucket without le", "without an le",
                "# TYPE h histogram\nh_bucket 5\nh_bucket{le=\"+Inf\"} 5\n"
                "h_sum 3\nh_count 5\n"},
        BadText{"le not a number", "not a number",
                "# TYPE h histogram\nh_bucket{le=\"one\"} 1\n"
                "h_bucket{le=\"+Inf\"} 5\nh_sum 3\nh_count 5\n"},
        BadText{"buckets out of order", "not above",
                "# TYPE h histogram\nh_bucket{le=\"2\"} 1\n"
                "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 5\nh_sum 3\n"
                "h_count 5\n"},
        BadText{"a series with buckets missing", "no +Inf",
                "# TYPE h histogram\nh_bucket{a=\"x\",le=\"+Inf\"} 1\n"
                "h_sum{a=\"x\"} 1\nh_count{a=\"x\"} 1\nh_sum{a=\"y\"} 1\n"
                "h_count{a=\"y\"} 1\n"},
        BadText{"a bare sample of a histogram", "without _bucket",
                "# TYPE h histogram\nh 1\n"}));

// ---------------------------------------------------------------------------
// The registry.

TEST(MetricsTest, RendersTheTextFormatExactly) {
  Metrics m;
  auto* requests = m.AddCounter("t_requests_total",
                                "Requests.\nSecond line, a \\ and \"quotes\".",
                                {"path", "code"})
                       .value();
  requests->With({"/a", "200"}).Increment();
  requests->With({"/a", "200"}).Increment(2);
  requests->With({"we\"ird\\\n", "500"}).Increment();
  requests->With({"/a", "200"}).Increment(-5);  // ignored: counters go up
  m.AddGauge("t_temperature", "Temperature.").value()->With({}).Set(-3.5);
  auto* latency =
      m.AddHistogram("t_latency_seconds", "Latency.", {"op"}, {0.005, 0.25, 1})
          .value();
  latency->With({"read"}).Observe(0.25);  // on the bound: "le" is inclusive
  latency->With({"read"}).Observe(0.5);
  latency->With({"read"}).Observe(7);
  m.AddCounter("t_idle_total", "Never updated, no labels.").value();
  m.AddCounter("t_unused_total", "No series yet.", {"x"}).value();

  EXPECT_EQ(m.Render(), R"(# HELP t_idle_total Never updated, no labels.
# TYPE t_idle_total counter
t_idle_total 0
# HELP t_latency_seconds Latency.
# TYPE t_latency_seconds histogram
t_latency_seconds_bucket{op="read",le="0.005"} 0
t_latency_seconds_bucket{op="read",le="0.25"} 1
t_latency_seconds_bucket{op="read",le="1"} 2
t_latency_seconds_bucket{op="read",le="+Inf"} 3
t_latency_seconds_sum{op="read"} 7.75
t_latency_seconds_count{op="read"} 3
# HELP t_requests_total Requests.\nSecond line, a \\ and "quotes".
# TYPE t_requests_total counter
t_requests_total{path="/a",code="200"} 3
t_requests_total{path="we\"ird\\\n",code="500"} 1
# HELP t_temperature Temperature.
# TYPE t_temperature gauge
t_temperature -3.5
)");
  auto parsed = ParsePrometheusText(m.Render());
  ASSERT_OK(parsed.status());
  EXPECT_EQ(parsed->Find("t_requests_total")->help,
            "Requests.\nSecond line, a \\ and \"quotes\".");
}

TEST(MetricsTest, TrickyLabelValuesSurviveTheRoundTrip) {
  const std::vector<std::string> values = {
      "",        "\\",          "\"",       "\n",         "a\\nb",    "\\\"",
      "\"\\n\"", "caf\xc3\xa9", "{}=,# \t", "trailing\\", "two\n\nlf"};
  Metrics m;
  auto* c = m.AddCounter("t_total", "Tricky.", {"v", "w"}).value();
  for (size_t i = 0; i < values.size(); ++i) {
    c->With({values[i], "same"}).Increment(static_cast<double>(i + 1));
  }
  auto parsed = ParsePrometheusText(m.Render());
  ASSERT_OK(parsed.status());
  ASSERT_EQ(parsed->Find("t_total")->samples.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(parsed->Value("t_total", {{"v", values[i]}, {"w", "same"}}),
              static_cast<double>(i + 1))
        << "label value #" << i;
  }
}

TEST(MetricsTest, ValuesAreFormattedSoThatPrometheusReadsThemBack) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-0.0), "0");
  EXPECT_EQ(FormatMetricValue(3), "3");
  EXPECT_EQ(FormatMetricValue(-2), "-2");
  EXPECT_EQ(FormatMetricValue(2.5), "2.5");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(0.005), "0.005");
  EXPECT_EQ(FormatMetricValue(1e-7), "1e-07");
  EXPECT_EQ(FormatMetricValue(1.5e300), "1.5e+300");
  EXPECT_EQ(FormatMetricValue(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(HUGE_VAL), "+Inf");
  EXPECT_EQ(FormatMetricValue(-HUGE_VAL), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");

  const std::vector<double> values = {0.1,
                                      1.0 / 3,
                                      -2.75e-300,
                                      123456789.125,
                                      1e21,
                                      4.9e-324,
                                      std::numeric_limits<double>::max()};
  Metrics m;
  auto* g = m.AddGauge("t_values", "Values.", {"i"}).value();
  for (size_t i = 0; i < values.size(); ++i) {
    g->With({std::to_string(i)}).Set(values[i]);
  }
  g->With({"nan"}).Set(std::nan(""));
  auto parsed = ParsePrometheusText(m.Render());
  ASSERT_OK(parsed.status());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(parsed->Value("t_values", {{"i", std::to_string(i)}}), values[i]);
  }
  EXPECT_TRUE(std::isnan(*parsed->Value("t_values", {{"i", "nan"}})));
}

TEST(MetricsTest, BadOrClashingRegistrationsAreRefused) {
  Metrics m;
  ASSERT_OK(m.AddHistogram("t_h", "H.", {}, {1, 2}).status());
  ASSERT_OK(m.AddCounter("t_c_total", "C.", {"a"}).status());
  auto invalid = [](const Status& s) { return s.IsInvalidArgument(); };
  EXPECT_PRED1(invalid, m.AddCounter("", "x").status());
  EXPECT_PRED1(invalid, m.AddCounter("1abc", "x").status());
  EXPECT_PRED1(invalid, m.AddCounter("a-b", "x").status());
  EXPECT_PRED1(invalid, m.AddGauge("ok", "x", {"bad-label"}).status());
  EXPECT_PRED1(invalid, m.AddGauge("ok", "x", {"__reserved"}).status());
  EXPECT_PRED1(invalid, m.AddGauge("ok", "x", {"a", "a"}).status());
  EXPECT_PRED1(invalid, m.AddHistogram("ok", "x", {"le"}, {1}).status());
  EXPECT_PRED1(invalid, m.AddHistogram("ok", "x", {}, {2, 1}).status());
  EXPECT_PRED1(invalid, m.AddHistogram("ok", "x", {}, {1, 1}).status());
  EXPECT_PRED1(invalid, m.AddHistogram("ok", "x", {}, {1, HUGE_VAL}).status());
  EXPECT_PRED1(invalid, m.AddGauge("process_open_fds", "x").status());
  EXPECT_TRUE(
      m.AddCounter("t_c_total", "again", {"a"}).status().IsAlreadyExists());
  EXPECT_TRUE(m.AddGauge("t_h", "x").status().IsAlreadyExists());
  EXPECT_TRUE(m.AddGauge("t_h_count", "x").status().IsAlreadyExists());
  EXPECT_TRUE(m.AddGauge("t_h_bucket", "x").status().IsAlreadyExists());
  EXPECT_TRUE(m.AddHistogram("t_c", "x", {}, {1}).status().ok());
  EXPECT_TRUE(
      m.AddHistogram("t_c_total", "x", {}, {1}).status().IsAlreadyExists());
  auto parsed = ParsePrometheusText(m.Render());
  EXPECT_OK(parsed.status());
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCountedAndEveryScrapeIsValid) {
  Metrics m;
  auto* c = m.AddCounter("t_ops_total", "Ops.", {"thread"}).value();
  auto* h = m.AddHistogram("t_sizes", "Sizes.", {}, {1, 2}).value();
  Gauge& g = m.AddGauge("t_level", "Level.").value()->With({});
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    do {
      auto parsed = ParsePrometheusText(m.Render());
      ASSERT_OK(parsed.status());
      ++scrapes;
    } while (!done);
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      // On a loaded machine the writers could finish before the scraper
      // runs at all: they start once it has.
      while (scrapes.load() == 0) std::this_thread::yield();
      Counter& mine = c->With({std::to_string(t % 2)});
      for (int i = 0; i < kOps; ++i) {
        mine.Increment();
        h->With({}).Observe(i % 3);
        g.Add(1);
        g.Add(-1);
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 0);
  auto parsed = ParsePrometheusText(m.Render());
  ASSERT_OK(parsed.status());
  EXPECT_EQ(parsed->Value("t_ops_total", {{"thread", "0"}}), 2 * kOps);
  EXPECT_EQ(parsed->Value("t_ops_total", {{"thread", "1"}}), 2 * kOps);
  EXPECT_EQ(parsed->Value("t_sizes_count"), kThreads * kOps);
  EXPECT_EQ(parsed->Value("t_level"), 0);
}

TEST(MetricsTest, ProcessMetricsAreReadFromProc) {
  std::string text;
  AppendProcessMetrics(&text);
  auto parsed = ParsePrometheusText(text);
  ASSERT_OK(parsed.status());
  for (const char* name :
       {"process_resident_memory_bytes", "process_cpu_seconds_total",
        "process_open_fds", "process_max_fds", "process_start_time_seconds",
        "process_virtual_memory_bytes"}) {
    ASSERT_TRUE(parsed->Value(name).has_value()) << name;
  }
  EXPECT_EQ(parsed->Find("process_cpu_seconds_total")->type, "counter");
  EXPECT_GT(*parsed->Value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(*parsed->Value("process_virtual_memory_bytes"),
            *parsed->Value("process_resident_memory_bytes"));
  EXPECT_GE(*parsed->Value("process_open_fds"), 3);
  EXPECT_GE(*parsed->Value("process_cpu_seconds_total"), 0);
  const double now = static_cast<double>(std::time(nullptr));
  const double started = *parsed->Value("process_start_time_seconds");
  EXPECT_LE(started, now + 1);
  EXPECT_GT(started, now - 24 * 3600);  // this test process is young
}

// ---------------------------------------------------------------------------
// The engine's metrics, end to end.

using test::Workflow;

json FastRetry(int attempts) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", 1},
          {"max_backoff_ms", 5},
          {"jitter", 0}};
}

// Parses what the engine renders (the registry and the process figures, as
// a /metrics endpoint serves them).
PromExposition Scrape(Engine& engine) {
  std::string text = engine.metrics().Render();
  AppendProcessMetrics(&text);
  auto parsed = ParsePrometheusText(text);
  EXPECT_OK(parsed.status());
  return parsed.ok() ? std::move(parsed).value() : PromExposition{};
}

// The value of a series that must exist; -1 (and a failure) if it does not.
double Must(const PromExposition& e, const std::string& name,
            const Labels& labels = {}) {
  auto v = e.Value(name, labels);
  EXPECT_TRUE(v.has_value())
      << name << " with " << labels.size() << " labels is missing";
  return v.value_or(-1);
}

TEST(EngineMetricsTest, OutcomesRetriesCompensationsAndTheDlqAreCounted) {
  bool healthy = false;
  NativeAction svc = [&](const AttemptRequest&, ActionDone done) {
    done(healthy ? ActionResult::Success(nullptr)
                 : ActionResult::Failure("http_503", "service unavailable"));
  };
  HeldAction slow, gate;
  EngineHarness h;
  ASSERT_OK(h.Open(
      "",
      {{"svc", svc}, {"slow", slow.AsAction()}, {"gate", gate.AsAction()}}));
  ASSERT_OK(h.Register(Workflow("ok", {{{"name", "a"}, {"action", "noop"}},
                                       {{"name", "b"}, {"action", "echo"}}}))
                .status());
  ASSERT_OK(h.Register(Workflow("trip", {{{"name", "reserve"},
                                          {"action", "noop"},
                                          {"compensate", {{"action", "noop"}}}},
                                         {{"name", "pay"},
                                          {"action", "fail"},
                                          {"retry", FastRetry(1)}}}))
                .status());
  ASSERT_OK(h.Register(Workflow("flaky", {{{"name", "f"},
                                           {"action", "fail"},
                                           {"params", {{"fail_attempts", 2}}},
                                           {"retry", FastRetry(5)}}}))
                .status());
  ASSERT_OK(
      h
          .Register(Workflow(
              "p",
              {{{"name", "call"}, {"action", "svc"}, {"retry", FastRetry(2)}}},
              {{"on_failure", "park"}}))
          .status());
  ASSERT_OK(h.Register(Workflow("t", {{{"name", "slow"},
                                       {"action", "slow"},
                                       {"timeout_ms", 1000},
                                       {"retry", FastRetry(2)}}}))
                .status());
  ASSERT_OK(h.Register(Workflow("c", {{{"name", "g"}, {"action", "gate"}}}))
                .status());

  auto run = [&](const std::string& workflow) {
    auto started = h.Start({.workflow = workflow});
    EXPECT_OK(started.status());
    return started.ok() ? started->saga_id : "";
  };
  auto await = [&](const std::string& id, SagaState state) {
    auto rec = h.AwaitInactive(id);
    ASSERT_OK(rec.status());
    EXPECT_EQ(rec->state, state) << id;
  };
  await(run("ok"), SagaState::kCompleted);
  await(run("ok"), SagaState::kCompleted);
  await(run("trip"), SagaState::kCompensated);
  await(run("flaky"), SagaState::kCompleted);
  const std::string parked = run("p");
  await(parked, SagaState::kParked);
  EXPECT_EQ(Must(Scrape(h.engine()), "cde_dlq_entries"), 1);

  // A timed-out attempt, retried; its late result is ignored.
  const std::string timed = run("t");
  ASSERT_TRUE(h.RunUntil([&] { return slow.calls() == 2; }));
  slow.Complete(ActionResult::Success(nullptr));
  slow.Complete(ActionResult::Success(nullptr));
  await(timed, SagaState::kCompleted);

  // A saga cancelled (without compensation) while its attempt runs.
  const std::string cancelled = run("c");
  ASSERT_TRUE(h.RunUntil([&] { return gate.pending() == 1; }));
  {
    PromExposition mid = Scrape(h.engine());
    EXPECT_EQ(Must(mid, "cde_sagas_in_flight"), 1);
    EXPECT_EQ(Must(mid, "cde_attempts_in_flight"), 1);
  }
  ASSERT_OK(h.Cancel(cancelled, /*compensate=*/false).status());
  gate.Complete(ActionResult::Success(nullptr));
  await(cancelled, SagaState::kCancelled);

  healthy = true;
  ASSERT_OK(h.Replay(parked).status());
  await(parked, SagaState::kCompleted);

  const PromExposition e = Scrape(h.engine());
  for (const auto& [wf, n] : std::map<std::string, double>{{"ok", 2},
                                                           {"trip", 1},
                                                           {"flaky", 1},
                                                           {"p", 1},
                                                           {"t", 1},
                                                           {"c", 1}}) {
    EXPECT_EQ(Must(e, "cde_sagas_started_total", {{"workflow", wf}}), n) << wf;
  }
  auto finished = [&](const std::string& wf, const std::string& outcome) {
    return e.Value("cde_sagas_finished_total",
                   {{"workflow", wf}, {"outcome", outcome}});
  };
  EXPECT_EQ(finished("ok", "completed"), 2);
  EXPECT_EQ(finished("trip", "compensated"), 1);
  EXPECT_EQ(finished("trip", "completed"), std::nullopt);
  EXPECT_EQ(finished("flaky", "completed"), 1);
  EXPECT_EQ(finished("p", "parked"), 1);
  EXPECT_EQ(finished("p", "completed"), 1);  // after the replay
  EXPECT_EQ(finished("t", "completed"), 1);
  EXPECT_EQ(finished("c", "cancelled"), 1);
  EXPECT_EQ(e.Find("cde_sagas_finished_total")->samples.size(), 7u);

  auto attempts = [&](const std::string& wf, const std::string& step,
                      const std::string& result) {
    return e.Value("cde_attempts_total",
                   {{"workflow", wf}, {"step", step}, {"result", result}});
  };
  EXPECT_EQ(attempts("ok", "a", "ok"), 2);
  EXPECT_EQ(attempts("ok", "b", "ok"), 2);
  EXPECT_EQ(attempts("trip", "reserve", "ok"), 1);  // not its compensation
  EXPECT_EQ(attempts("trip", "pay", "error"), 1);
  EXPECT_EQ(attempts("flaky", "f", "error"), 2);
  EXPECT_EQ(attempts("flaky", "f", "ok"), 1);
  EXPECT_EQ(attempts("p", "call", "error"), 2);
  EXPECT_EQ(attempts("p", "call", "ok"), 1);
  EXPECT_EQ(attempts("t", "slow", "timeout"), 1);
  EXPECT_EQ(attempts("t", "slow", "ok"), 1);
  EXPECT_EQ(attempts("c", "g", "ok"), 1);
  EXPECT_EQ(e.Find("cde_attempts_total")->samples.size(), 11u);

  auto retries = [&](const std::string& wf, const std::string& step) {
    return e.Value("cde_retries_total", {{"workflow", wf}, {"step", step}});
  };
  EXPECT_EQ(retries("flaky", "f"), 2);
  EXPECT_EQ(retries("p", "call"), 1);
  EXPECT_EQ(retries("t", "slow"), 1);
  EXPECT_EQ(e.Find("cde_retries_total")->samples.size(), 3u);

  EXPECT_EQ(Must(e, "cde_compensations_total",
                 {{"workflow", "trip"}, {"step", "reserve"}}),
            1);
  EXPECT_EQ(e.Find("cde_compensations_total")->samples.size(), 1u);

  EXPECT_EQ(Must(e, "cde_dlq_entries"), 0);
  EXPECT_EQ(Must(e, "cde_sagas_in_flight"), 0);
  EXPECT_EQ(Must(e, "cde_attempts_in_flight"), 0);

  // One duration per attempt with an outcome; the timed-out one took
  // about its 1,000 ms (the loop's cached time may start it a little late).
  EXPECT_EQ(Must(e, "cde_step_duration_seconds_count",
                 {{"workflow", "flaky"}, {"step", "f"}}),
            3);
  EXPECT_EQ(Must(e, "cde_step_duration_seconds_count",
                 {{"workflow", "t"}, {"step", "slow"}}),
            2);
  EXPECT_GE(Must(e, "cde_step_duration_seconds_sum",
                 {{"workflow", "t"}, {"step", "slow"}}),
            0.9);

  // Every transition went through one group commit and one timed commit.
  const EngineStats stats = h.engine().stats();
  EXPECT_EQ(Must(e, "cde_commit_batch_size_sum"),
            static_cast<double>(stats.commits));
  EXPECT_EQ(Must(e, "cde_commit_batch_size_count"),
            static_cast<double>(stats.commit_groups));
  EXPECT_LE(Must(e, "cde_commit_groups_gathered_total"),
            static_cast<double>(stats.commit_groups));
  EXPECT_EQ(Must(e, "cde_commit_latency_seconds_count"),
            static_cast<double>(stats.commits));
  EXPECT_GT(Must(e, "cde_commit_latency_seconds_sum"), 0);
}

TEST(EngineMetricsTest, GaugesStartFromTheStoreAfterAReopen) {
  test::TempDir dir;
  std::string parked, held_id;
  {
    NativeAction down = [](const AttemptRequest&, ActionDone done) {
      done(ActionResult::Failure("http_503", "down"));
    };
    HeldAction held;
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"svc", down}, {"held", held.AsAction()}}));
    ASSERT_OK(h.Register(Workflow("p",
                                  {{{"name", "call"},
                                    {"action", "svc"},
                                    {"retry", FastRetry(1)}}},
                                  {{"on_failure", "park"}}))
                  .status());
    ASSERT_OK(h.Register(Workflow("w", {{{"name", "a"}, {"action", "held"}}}))
                  .status());
    auto p = h.Start({.workflow = "p"});
    ASSERT_OK(p.status());
    parked = p->saga_id;
    ASSERT_OK(h.AwaitInactive(parked).status());
    auto w = h.Start({.workflow = "w"});
    ASSERT_OK(w.status());
    held_id = w->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
    ASSERT_OK(h.Close());  // the held attempt is abandoned, re-run on open
  }
  NativeAction up = [](const AttemptRequest&, ActionDone done) {
    done(ActionResult::Success(nullptr));
  };
  HeldAction held;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"svc", up}, {"held", held.AsAction()}}));
  PromExposition e = Scrape(h.engine());
  EXPECT_EQ(Must(e, "cde_dlq_entries"), 1);
  EXPECT_EQ(Must(e, "cde_sagas_in_flight"), 1);
  EXPECT_EQ(Must(e, "cde_attempts_in_flight"), 1);
  // Counters start at zero in each process: no saga started in this one.
  EXPECT_EQ(e.Find("cde_sagas_started_total"), nullptr);

  ASSERT_OK(h.Replay(parked).status());
  ASSERT_OK(h.AwaitInactive(parked).status());
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
  held.Complete(ActionResult::Success(nullptr));
  ASSERT_OK(h.AwaitInactive(held_id).status());
  e = Scrape(h.engine());
  EXPECT_EQ(Must(e, "cde_dlq_entries"), 0);
  EXPECT_EQ(Must(e, "cde_sagas_in_flight"), 0);
  EXPECT_EQ(Must(e, "cde_attempts_in_flight"), 0);
  EXPECT_EQ(Must(e, "cde_sagas_finished_total",
                 {{"workflow", "p"}, {"outcome", "completed"}}),
            1);
  EXPECT_EQ(Must(e, "cde_sagas_finished_total",
                 {{"workflow", "w"}, {"outcome", "completed"}}),
            1);
}

}  // namespace
}  // namespace cde
