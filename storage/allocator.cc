#include "storage/allocator.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#ifdef CDE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace cde {

namespace {

#ifdef CDE_WITH_JEMALLOC
// jemalloc's count of the bytes this thread has allocated, or 0 when the
// call fails.
uint64_t ThreadAllocatedBytes() {
  uint64_t bytes = 0;
  size_t size = sizeof(bytes);
  if (mallctl("thread.allocated", &bytes, &size, nullptr, 0) != 0) return 0;
  return bytes;
}

// Linked is not the same as in use: if glibc's malloc came first in the
// symbol lookup, jemalloc would sit in the process unused.
bool MallocIsJemalloc() {
  const uint64_t before = ThreadAllocatedBytes();
  void* volatile block = std::malloc(1 << 16);
  if (block == nullptr) return false;
  std::memset(block, 1, 1);
  const uint64_t after = ThreadAllocatedBytes();
  std::free(block);
  return after >= before + (1 << 16);
}
#endif

}  // namespace

std::string AllocatorName() {
#ifdef CDE_WITH_JEMALLOC
  if (MallocIsJemalloc()) {
    const char* version = nullptr;
    size_t size = sizeof(version);
    std::string name = "jemalloc";
    if (mallctl("version", &version, &size, nullptr, 0) == 0 &&
        version != nullptr) {
      // "5.3.0-0-g<commit>": the release is enough.
      name += ' ';
      name += std::string(version).substr(0, std::strcspn(version, "-"));
    }
    return name;
  }
#endif
  return "system malloc";
}

}  // namespace cde
