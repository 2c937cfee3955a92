// AsyncActionFixture: a loop and one AsyncAction (exec or http), with the
// helpers both action tests use. TearDown closes the action and checks, as
// libuv's MAKE_VALGRIND_HAPPY does, that every handle is closed.
#ifndef CDE_TESTS_ENGINE_ASYNC_ACTION_FIXTURE_H_
#define CDE_TESTS_ENGINE_ASYNC_ACTION_FIXTURE_H_

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/async_action.h"

namespace cde {

class AsyncActionFixture : public ::testing::Test {
 protected:
  AsyncActionFixture(std::string workflow, std::string step, uint32_t attempt)
      : workflow_(std::move(workflow)),
        step_(std::move(step)),
        attempt_(attempt) {}

  // REQUIRES: called by the derived SetUp with the action to test.
  void Init(
      const std::function<std::unique_ptr<AsyncAction>(uv_loop_t*)>& make) {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    action_ = make(&loop_);
  }

  void TearDown() override { CloseAndDrain(); }

  void CloseAndDrain() {
    if (action_ == nullptr) return;
    bool closed = false;
    action_->Close([&] { closed = true; });
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_TRUE(closed);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    action_.reset();
  }

  AttemptRequest Request(nlohmann::json params) {
    AttemptRequest r;
    r.saga_id = "01SAGA";
    r.workflow = workflow_;
    r.step = step_;
    r.attempt = attempt_;
    r.idempotency_key = "01SAGA/" + step_ + "/" + std::to_string(attempt_);
    r.params = std::move(params);
    return r;
  }

  // Starts one attempt and runs the loop until it completes.
  ActionResult Run(nlohmann::json params) {
    std::optional<ActionResult> result;
    action_->Start(Request(std::move(params)),
                   [&](ActionResult r) { result = std::move(r); });
    EXPECT_FALSE(result.has_value()) << "done ran inside Start";
    while (!result.has_value() && uv_run(&loop_, UV_RUN_ONCE) != 0) {
    }
    EXPECT_TRUE(result.has_value());
    EXPECT_EQ(action_->in_flight(), 0u);
    return result.value_or(ActionResult::Failure("none", "no result"));
  }

  // Runs the loop until `done()` or `timeout_ms` passes (false then),
  // checking every few milliseconds; then closes the timer it used.
  bool RunUntil(const std::function<bool()>& done, int timeout_ms = 30000) {
    struct Check {
      const std::function<bool()>* done;
      std::chrono::steady_clock::time_point deadline;
      bool ok = false;
    } check{&done, std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(timeout_ms)};
    check.ok = done();
    if (check.ok) return true;
    uv_timer_t timer;
    uv_timer_init(&loop_, &timer);
    timer.data = &check;
    uv_timer_start(
        &timer,
        [](uv_timer_t* t) {
          auto* c = static_cast<Check*>(t->data);
          c->ok = (*c->done)();
          if (c->ok || std::chrono::steady_clock::now() >= c->deadline) {
            uv_stop(t->loop);
          }
        },
        5, 5);
    uv_run(&loop_, UV_RUN_DEFAULT);
    bool closed = false;
    timer.data = &closed;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer),
             [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
    while (!closed) uv_run(&loop_, UV_RUN_ONCE);
    return check.ok;
  }

  uv_loop_t loop_;
  std::unique_ptr<AsyncAction> action_;

 private:
  std::string workflow_;
  std::string step_;
  uint32_t attempt_;
};

}  // namespace cde

#endif  // CDE_TESTS_ENGINE_ASYNC_ACTION_FIXTURE_H_
