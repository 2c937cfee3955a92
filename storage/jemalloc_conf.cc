// jemalloc's options for every program that links it, read at its first
// allocation (the MALLOC_CONF environment variable, read after this, still
// overrides any of them). Linked into each executable by CMake (the
// cde_allocator target), not through cde_storage's archive, whose members a
// program pulls in only for a symbol it calls.
//
// narenas:1   One arena instead of four per CPU: eight of them made an
//             idle engine larger for nothing measurable (the threads' caches
//             take the contention).
//
// Not thp:always (transparent huge pages for all of jemalloc's memory),
// which these programs ran with from issue 18 part 6 to part 13: it saved
// page faults while RocksDB's memtables filled fresh memory, but a commit
// whose row landed on a fresh 2 MiB page waited while the kernel zeroed
// it, and once transitions were smaller it no longer paid: without it the
// store's p99 at 64 enqueuers fell from 1.8-6 ms to 1.3-1.5 ms, noop
// sagas/s were the same or better, and resuming 100,000 sagas took as long
// (docs/benchmarks.md, part 13).
#ifdef CDE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>

const char* malloc_conf = "narenas:1";
#endif
