// The workflows cde-torture runs: every kind of step, compensations that
// must run exactly for the steps that started, failures that park.
#include <nlohmann/json.hpp>

#include "tools/torture/torture.h"

namespace cde::torture {

using nlohmann::json;

namespace {

json Retry(int attempts) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", 20},
          {"max_backoff_ms", 200},
          {"non_retryable", json::array({"failed"})}};
}

json Book(const TestHttpServer& endpoint) {
  return {
      {"name", "book"},
      {"action", "http"},
      {"params", {{"method", "POST"}, {"url", endpoint.url("/book")}}},
      {"retry", Retry(4)},
      {"timeout_ms", 2000},
      {"compensate",
       {{"action", "http"},
        {"params", {{"method", "DELETE"}, {"url", endpoint.url("/refund")}}},
        {"retry", Retry(20)},
        {"timeout_ms", 2000}}}};
}

// A map step booking each of 12 items, 4 at a time, each refunded when the
// saga is undone; nested, the items are 3 rows of 4 seats, and a map step
// inside the map step books each row's seats, 2 at a time.
json FanOut(const TestHttpServer& endpoint, bool nested = false) {
  json book = Book(endpoint);
  book["params"]["body"] = {{"item", "${item}"}, {"index", "${index}"}};
  json items = json::array();
  for (int i = 0; i < kFanOutItems; ++i) {
    const std::string seat = "seat-" + std::to_string(i);
    if (!nested) {
      items.push_back(seat);
    } else if (i % kFanOutRowSeats == 0) {
      items.push_back({{"seats", json::array({seat})}});
    } else {
      items.back()["seats"].push_back(seat);
    }
  }
  if (nested) {
    const json rows = {{"items", "${item.seats}"},
                       {"max_concurrency", 2},
                       {"steps", json::array({book})}};
    return {{"name", "fan"},
            {"map",
             {{"items", items},
              {"max_concurrency", 2},
              {"steps", json::array({{{"name", "rows"}, {"map", rows}}})}}}};
  }
  return {{"name", "fan"},
          {"map",
           {{"items", items},
            {"max_concurrency", 4},
            {"steps", json::array({book})}}}};
}

json Workflow(const std::string& name, json steps, json extra = {}) {
  json doc = {{"name", name}, {"version", 1}, {"steps", std::move(steps)}};
  if (extra.is_object()) doc.update(extra);
  return doc;
}

}  // namespace

std::vector<json> Workflows(const TestHttpServer& endpoint) {
  // Registered over MCP, so a client's: the server allows /bin/sh alone.
  const json exec_ok = {{"argv", json::array({"/bin/sh", "-c", "echo '{}'"})}};
  return {
      Workflow("t-noop", {{{"name", "a"}, {"action", "noop"}},
                          {{"name", "b"}, {"action", "noop"}}}),
      Workflow("t-sleep", {{{"name", "nap"},
                            {"action", "sleep"},
                            {"params", {{"duration_ms", 150}}}},
                           {{"name", "done"}, {"action", "noop"}}}),
      Workflow("t-exec",
               {{{"name", "run"},
                 {"action", "exec"},
                 {"params", exec_ok},
                 {"retry", Retry(3)},
                 {"compensate", {{"action", "exec"}, {"params", exec_ok}}}}}),
      Workflow("t-http",
               {Book(endpoint), {{"name", "done"}, {"action", "noop"}}}),
      // Fails after booking: the booking must be refunded.
      Workflow("t-fail", {Book(endpoint),
                          {{"name", "boom"},
                           {"action", "fail"},
                           {"retry", {{"max_attempts", 1}}}}}),
      // Fan-out: every item booked once; undone, every booked item
      // refunded.
      Workflow("t-fanout",
               {FanOut(endpoint), {{"name", "done"}, {"action", "noop"}}}),
      Workflow("t-fanout-fail", {FanOut(endpoint),
                                 {{"name", "boom"},
                                  {"action", "fail"},
                                  {"retry", {{"max_attempts", 1}}}}}),
      Workflow("t-fanout-nested", {FanOut(endpoint, true),
                                   {{"name", "done"}, {"action", "noop"}}}),
      Workflow("t-fanout-nested-fail", {FanOut(endpoint, true),
                                        {{"name", "boom"},
                                         {"action", "fail"},
                                         {"retry", {{"max_attempts", 1}}}}}),
      Workflow("t-park",
               {{{"name", "a"}, {"action", "noop"}},
                {{"name", "boom"},
                 {"action", "fail"},
                 {"retry", {{"max_attempts", 1}}}}},
               {{"on_failure", "park"}}),
  };
}

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kKill:
      return "sigkill";
    case Fault::kTerm:
      return "sigterm";
    case Fault::kPause:
      return "sigstop";
    case Fault::kOutage:
      return "endpoint_outage";
    case Fault::kDiskFull:
      return "disk_full";
  }
  return "?";
}

}  // namespace cde::torture
