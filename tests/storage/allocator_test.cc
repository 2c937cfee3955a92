#include "storage/allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#ifdef CDE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace cde {
namespace {

#ifdef CDE_WITH_JEMALLOC
uint64_t ThreadAllocatedBytes() {
  uint64_t bytes = 0;
  size_t size = sizeof(bytes);
  EXPECT_EQ(mallctl("thread.allocated", &bytes, &size, nullptr, 0), 0);
  return bytes;
}

TEST(AllocatorTest, ABuildWithJemallocRunsOnIt) {
  const std::string name = AllocatorName();
  EXPECT_EQ(name.rfind("jemalloc ", 0), 0u) << name;
  EXPECT_GT(name.size(), std::string("jemalloc ").size()) << name;
}

// Most of the engine's allocations are C++ ones (strings, vectors, JSON
// values): operator new must reach jemalloc too, not only malloc.
TEST(AllocatorTest, CxxAllocationsGoThroughJemalloc) {
  const uint64_t before = ThreadAllocatedBytes();
  auto block = std::make_unique<char[]>(1 << 20);
  block[0] = 1;
  EXPECT_GE(ThreadAllocatedBytes(), before + (1 << 20));
}

// storage/jemalloc_conf.cc's options reach jemalloc: this test binary is a
// program like the others, linked the same way.
TEST(AllocatorTest, ProgramsRunJemallocWithOneArenaAndNoForcedHugePages) {
  if (std::getenv("MALLOC_CONF") != nullptr) {
    GTEST_SKIP() << "MALLOC_CONF overrides the programs' options";
  }
  const char* thp = nullptr;
  size_t size = sizeof(thp);
  ASSERT_EQ(mallctl("opt.thp", &thp, &size, nullptr, 0), 0);
  ASSERT_NE(thp, nullptr);
  EXPECT_STREQ(thp, "default");  // as the kernel decides
  unsigned narenas = 0;
  size = sizeof(narenas);
  ASSERT_EQ(mallctl("opt.narenas", &narenas, &size, nullptr, 0), 0);
  EXPECT_EQ(narenas, 1u);
}
#else
TEST(AllocatorTest, ABuildWithoutJemallocSaysSo) {
  EXPECT_EQ(AllocatorName(), "system malloc");
}
#endif

}  // namespace
}  // namespace cde
