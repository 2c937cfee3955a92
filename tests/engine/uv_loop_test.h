// UvLoopTest: a test with a libuv loop of its own. The loop is initialised
// before the test; after it, the loop runs until nothing is left and is
// closed (as libuv's MAKE_VALGRIND_HAPPY), which fails the test if it left
// a handle open.
#ifndef CDE_TESTS_ENGINE_UV_LOOP_TEST_H_
#define CDE_TESTS_ENGINE_UV_LOOP_TEST_H_

#include <gtest/gtest.h>
#include <uv.h>

namespace cde {

class UvLoopTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  uv_loop_t loop_;
};

}  // namespace cde

#endif  // CDE_TESTS_ENGINE_UV_LOOP_TEST_H_
