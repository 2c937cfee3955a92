// CpuRelax: the pause a thread makes between two looks at a flag another
// thread sets, where sleeping on a condition variable would cost a futex
// wake-up (the commit writer watching its queue, a writer watching for the
// end of a sync).
#ifndef CDE_STORAGE_CPU_RELAX_H_
#define CDE_STORAGE_CPU_RELAX_H_

namespace cde {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace cde

#endif  // CDE_STORAGE_CPU_RELAX_H_
