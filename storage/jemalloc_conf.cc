// jemalloc's options for every program that links it, read at its first
// allocation (the MALLOC_CONF environment variable, read after this, still
// overrides any of them). Linked into each executable by CMake (the
// cde_allocator target), not through cde_storage's archive, whose members a
// program pulls in only for a symbol it calls.
//
// thp:always  Transparent huge pages for jemalloc's memory (where the kernel
//             leaves them to madvise, as Debian's does). RocksDB's writer
//             fills each memtable's fresh arena blocks as it inserts rows, and
//             with 4 KiB pages it took a page fault per 4 KiB: on a virtual
//             machine a fifth of the writer thread's time. With 2 MiB pages,
//             a tenth of the faults and fewer TLB misses in the memtables'
//             skip lists: resuming 100,000 sagas a third faster, +9-16 %
//             noop sagas/s while memory is fresh (a long run reuses its
//             memtables' memory and gains nothing; docs/benchmarks.md,
//             issue 18 part 6).
// narenas:1   One arena instead of four per CPU: with huge pages every arena
//             holds at least one, and eight of them made an idle engine 29 MiB
//             larger; one costs 4 MiB and measured no slower (the threads'
//             caches take the contention).
#ifdef CDE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>

const char* malloc_conf = "thp:always,narenas:1";
#endif
