// The first ten minutes: the trip-booking example, as docs/examples has it,
// against cde-demo-services on 127.0.0.1:9100 (a real process): it
// completes holding a flight, a hotel and a car; once the hotel is made to
// refuse, the next trip is compensated and its flight cancelled.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/engine/engine_harness.h"
#include "tools/die_with_parent.h"
#include "tools/http_call.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr const char* kBase = "http://127.0.0.1:9100";

// cde-demo-services, started by fork and exec, ended by its PID.
class DemoServices {
 public:
  ~DemoServices() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  // Starts it and waits for its banner: true once it listens.
  bool Start() {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      DieWithParent(parent);
      dup2(out[1], STDOUT_FILENO);
      execl(CDE_DEMO_SERVICES_PATH, CDE_DEMO_SERVICES_PATH, nullptr);
      _exit(127);
    }
    close(out[1]);
    std::string banner;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (banner.find('\n') == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = read(out[0], buf, sizeof(buf));
      if (n <= 0) break;  // it exited (the port is taken?)
      banner.append(buf, static_cast<size_t>(n));
    }
    close(out[0]);
    return banner.find("http://127.0.0.1:9100") != std::string::npos;
  }

 private:
  pid_t pid_ = -1;
};

json Call(const std::string& method, const std::string& path) {
  HttpAnswer a = PerformHttpCall({.method = method, .url = kBase + path});
  EXPECT_TRUE(a.answered()) << a.error;
  return json::parse(a.body, nullptr, false);
}

// A second copy on the taken port says so and exits 1 (it used to abort
// while cleaning up the server that never started).
TEST(DemoServicesTest, ATakenPortIsAClearErrorNotACrash) {
  DemoServices demo;
  ASSERT_TRUE(demo.Start()) << "cde-demo-services did not start on 9100";
  int err[2];
  ASSERT_EQ(pipe2(err, O_CLOEXEC), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], STDERR_FILENO);
    execl(CDE_DEMO_SERVICES_PATH, CDE_DEMO_SERVICES_PATH, nullptr);
    _exit(127);
  }
  close(err[1]);
  std::string said;
  char buf[256];
  for (ssize_t n; (n = read(err[0], buf, sizeof(buf))) > 0;) {
    said.append(buf, static_cast<size_t>(n));
  }
  close(err[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status))
      << "ended by signal " << WTERMSIG(status) << ": " << said;
  EXPECT_EQ(WEXITSTATUS(status), 1) << said;
  EXPECT_NE(said.find("port 9100: TestHttpServer: Address already in use"),
            std::string::npos)
      << said;
  EXPECT_EQ(said.find("terminate"), std::string::npos) << said;
}

TEST(DemoServicesTest, TripBookingCompletesAndAFailingHotelUndoesTheFlight) {
  DemoServices demo;
  ASSERT_TRUE(demo.Start()) << "cde-demo-services did not start on 9100";
  json def;
  std::ifstream(std::string(CDE_EXAMPLES_DIR) + "/trip-booking.json") >> def;
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  ASSERT_OK(h.Register(def).status());

  json input = def["examples"][0];
  auto first = h.Start({.workflow = "trip-booking", .input = input});
  ASSERT_OK(first.status());
  auto done = h.AwaitInactive(first->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted) << done->body.dump();
  json held = Call("GET", "/demo/state")["reservations"];
  const std::string trip = input["trip_id"].get<std::string>();
  for (const char* service : {"flight", "hotel", "car", "itinerary"}) {
    EXPECT_EQ(held[service][trip].size(), 1u) << service << held.dump();
  }

  EXPECT_EQ(Call("POST", "/demo/fail/hotel")["failing"], true);
  input["trip_id"] = "T-1002";
  auto second = h.Start({.workflow = "trip-booking", .input = input});
  ASSERT_OK(second.status());
  done = h.AwaitInactive(second->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompensated) << done->body.dump();
  EXPECT_EQ(done->body["steps"][0]["compensation"], "succeeded");
  EXPECT_EQ(done->body["steps"][1]["status"], "failed");
  EXPECT_EQ(done->body["steps"][1]["error"]["kind"], "http_409");
  held = Call("GET", "/demo/state")["reservations"];
  EXPECT_FALSE(held["flight"].contains("T-1002")) << held.dump();
  EXPECT_EQ(held["flight"][trip].size(), 1u);  // the first trip keeps it
  EXPECT_OK(h.Close());
}

TEST(DemoServicesTest, ParallelTripBooksHotelAndCarSideBySideAndUndoesBoth) {
  DemoServices demo;
  ASSERT_TRUE(demo.Start()) << "cde-demo-services did not start on 9100";
  json def;
  std::ifstream(std::string(CDE_EXAMPLES_DIR) +
                "/trip-booking-parallel.json") >>
      def;
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  ASSERT_OK(h.Register(def).status());

  json input = def["examples"][0];
  auto first = h.Start({.workflow = "trip-booking-parallel", .input = input});
  ASSERT_OK(first.status());
  auto done = h.AwaitInactive(first->saga_id);
  ASSERT_OK(done.status());
  ASSERT_EQ(done->state, SagaState::kCompleted) << done->body.dump();
  // The parallel step's output holds both branches' reservations.
  const json& stay = done->body["steps"][1]["output"];
  EXPECT_TRUE(stay["hotel"].contains("reservation_id")) << stay.dump();
  EXPECT_TRUE(stay["car"].contains("reservation_id")) << stay.dump();
  json held = Call("GET", "/demo/state")["reservations"];
  const std::string trip = input["trip_id"].get<std::string>();
  for (const char* service : {"flight", "hotel", "car", "itinerary"}) {
    EXPECT_EQ(held[service][trip].size(), 1u) << service << held.dump();
  }

  // The car fails: the flight and the hotel are cancelled.
  EXPECT_EQ(Call("POST", "/demo/fail/car")["failing"], true);
  input["trip_id"] = "T-2002";
  auto second = h.Start({.workflow = "trip-booking-parallel", .input = input});
  ASSERT_OK(second.status());
  done = h.AwaitInactive(second->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompensated) << done->body.dump();
  held = Call("GET", "/demo/state")["reservations"];
  for (const char* service : {"flight", "hotel", "car"}) {
    EXPECT_FALSE(held[service].contains("T-2002")) << service << held.dump();
  }
  EXPECT_EQ(held["hotel"][trip].size(), 1u);  // the first trip keeps it
  EXPECT_OK(h.Close());
}

}  // namespace
}  // namespace cde
