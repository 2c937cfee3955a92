// cde-demo-services: the flight, hotel and car APIs that the trip-booking
// example calls, on 127.0.0.1:9100, so that the examples run out of the box
// (`tools/cde-dev demo` starts it beside the server).
//
//   POST   /{flights,hotels,cars}/reservations   201 {reservation_id, trip_id}
//   DELETE /{flights,hotels,cars}/reservations?trip_id=T
//                                                 200 {cancelled: [ids]}
//   POST   /itineraries                           201 {itinerary_id, trip_id}
//   POST   /demo/fail/<service>    that service refuses new bookings (409)
//   DELETE /demo/fail/<service>    it books again
//   GET    /demo/state             reservations held and services failing
//
// <service> is flight, hotel, car or itinerary. A booking repeated with the
// same Idempotency-Key (the engine sends one per attempt) gets the same
// reservation back. State lives in memory only.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;
using Answer = TestHttpServer::Answer;
using Request = TestHttpServer::Request;

struct Service {
  std::string name;    // as /demo/fail/<name> says it
  std::string path;    // its bookings
  std::string prefix;  // of its ids
};

const std::vector<Service> kServices = {
    {"flight", "/flights/reservations", "FL"},
    {"hotel", "/hotels/reservations", "HT"},
    {"car", "/cars/reservations", "CR"},
    {"itinerary", "/itineraries", "IT"},
};

// The value of `key` in the query of `path` ("" when absent).
std::string QueryValue(const std::string& path, const std::string& key) {
  const size_t q = path.find('?');
  if (q == std::string::npos) return "";
  const std::string query = path.substr(q + 1);
  size_t at = 0;
  while (at <= query.size()) {
    const size_t end = std::min(query.find('&', at), query.size());
    const std::string pair = query.substr(at, end - at);
    if (pair.rfind(key + "=", 0) == 0) return pair.substr(key.size() + 1);
    at = end + 1;
  }
  return "";
}

// All state; the server calls handlers one at a time, so no lock.
class Demo {
 public:
  Answer Book(const Service& s, const Request& r) {
    if (r.method == "DELETE") return Cancel(s, r);
    if (r.method != "POST") return {405, R"({"error": "POST or DELETE"})"};
    if (failing_.count(s.name) != 0) {
      return {409, json{{"error", "no " + s.name +
                                      " available (failure injected by "
                                      "POST /demo/fail/" +
                                      s.name + ")"}}
                       .dump()};
    }
    const json body = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    const std::string trip = body.is_object() && body.contains("trip_id") &&
                                     body["trip_id"].is_string()
                                 ? body["trip_id"].get<std::string>()
                                 : "";
    if (trip.empty()) return {400, R"({"error": "trip_id: a string"})"};
    const std::string key = r.header("idempotency-key");
    auto& by_key = by_key_[s.name];
    std::string id;
    if (auto it = by_key.find(key); !key.empty() && it != by_key.end()) {
      id = it->second;  // a retry of a booking that was made
    } else {
      id = s.prefix + "-" + std::to_string(++next_id_);
      if (!key.empty()) by_key[key] = id;
      held_[s.name][trip].push_back(id);
    }
    const char* id_key =
        s.name == "itinerary" ? "itinerary_id" : "reservation_id";
    return {201, json{{id_key, id}, {"trip_id", trip}}.dump()};
  }

  Answer Cancel(const Service& s, const Request& r) {
    const std::string trip = QueryValue(r.path, "trip_id");
    if (trip.empty()) return {400, R"({"error": "?trip_id= is required"})"};
    // Cancelling what is not held succeeds: a compensation may run twice.
    std::vector<std::string> ids = std::move(held_[s.name][trip]);
    held_[s.name].erase(trip);
    return {200, json{{"cancelled", ids}, {"trip_id", trip}}.dump()};
  }

  Answer Fail(const Service& s, const Request& r) {
    if (r.method == "POST") {
      failing_.insert(s.name);
    } else if (r.method == "DELETE") {
      failing_.erase(s.name);
    } else {
      return {405, R"({"error": "POST or DELETE"})"};
    }
    return {200,
            json{{"service", s.name}, {"failing", failing_.count(s.name) != 0}}
                .dump()};
  }

  Answer State() const {
    json held = json::object();
    for (const auto& [service, trips] : held_) {
      for (const auto& [trip, ids] : trips) {
        if (!ids.empty()) held[service][trip] = ids;
      }
    }
    return {200, json{{"reservations", held}, {"failing", failing_}}.dump()};
  }

 private:
  // service -> trip -> reservation ids held
  std::map<std::string, std::map<std::string, std::vector<std::string>>> held_;
  // service -> Idempotency-Key -> reservation id
  std::map<std::string, std::map<std::string, std::string>> by_key_;
  std::set<std::string> failing_;
  uint64_t next_id_ = 1000;
};

}  // namespace
}  // namespace cde

int main(int argc, char** argv) {
  CLI::App app{"The demo APIs the trip-booking example calls."};
  int port = 9100;
  app.add_option("--port", port, "port on 127.0.0.1 (default 9100)")
      ->check(CLI::Range(1, 65535));
  CLI11_PARSE(app, argc, argv);

  // Blocked before any thread starts, so that sigwait below gets them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  cde::Demo demo;
  cde::TestHttpServer server;
  for (const cde::Service& s : cde::kServices) {
    server.Handle(
        s.path, [&demo, &s](const cde::Request& r) { return demo.Book(s, r); });
    server.Handle("/demo/fail/" + s.name, [&demo, &s](const cde::Request& r) {
      return demo.Fail(s, r);
    });
  }
  server.Handle("/demo/state",
                [&demo](const cde::Request&) { return demo.State(); });
  try {
    server.Start(port);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cde-demo-services: port %d: %s\n", port, e.what());
    return 1;
  }
  std::printf(
      "cde-demo-services: flights, hotels, cars on http://127.0.0.1:%d"
      " (POST /demo/fail/hotel makes the hotel refuse)\n",
      server.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  server.Stop();
  return 0;
}
