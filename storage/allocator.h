// Which malloc the process runs on. The programs link jemalloc when the
// build found it (CMake option CDE_JEMALLOC, on by default, off under the
// sanitizers, which bring their own): the engine's loop allocates and frees
// small objects per transition and RocksDB's writer per row, and jemalloc's
// per-thread caches gave 10 % more sagas/s where the process is CPU-bound
// and resumed 100,000 sagas 20 % faster (docs/benchmarks.md). The server logs
// the answer at start and cde-selfcheck prints it, so an operator can see which
// one a binary has.
#ifndef CDE_STORAGE_ALLOCATOR_H_
#define CDE_STORAGE_ALLOCATOR_H_

#include <string>

namespace cde {

// "jemalloc 5.3.0" when malloc is jemalloc's (checked: an allocation made
// through malloc shows in jemalloc's own count of this thread's bytes),
// else "system malloc" (glibc's, or a sanitizer's).
std::string AllocatorName();

}  // namespace cde

#endif  // CDE_STORAGE_ALLOCATOR_H_
