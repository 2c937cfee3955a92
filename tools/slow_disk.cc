// libcde-slow-disk.so: an LD_PRELOAD module that makes every fdatasync and
// fsync of the process take at least CDE_SLOW_DISK_US microseconds, so
// that one machine can also measure what a machine with a slower disk
// would (issue 18 sets its targets on a disk whose fdatasync takes 0.5 ms;
// this machine's takes 0.1-0.2 ms). The real call is made first and the
// caller then waits out the rest, the CPU left free as it is while a real
// disk flushes. docs/benchmarks.md shows how the benchmarks use it.
//
// Unset or 0: calls pass through unchanged. Only for benchmarks; never
// loaded by the server or the tests.
#include <dlfcn.h>
#include <sys/prctl.h>
#include <time.h>

#include <cerrno>
#include <cstdlib>

namespace {

using SyncFn = int (*)(int);

long MinimumMicros() {
  static const long micros = [] {
    const char* text = std::getenv("CDE_SLOW_DISK_US");
    if (text == nullptr) return 0L;
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    return end != text && *end == '\0' && value > 0 ? value : 0L;
  }();
  return micros;
}

timespec Plus(timespec t, long micros) {
  t.tv_nsec += micros * 1000;
  t.tv_sec += t.tv_nsec / 1000000000;
  t.tv_nsec %= 1000000000;
  return t;
}

int SyncAtLeast(SyncFn real, int fd) {
  const long micros = MinimumMicros();
  if (micros == 0) return real(fd);
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline = Plus(deadline, micros);
  const int rc = real(fd);
  const int saved_errno = errno;  // the caller reads the real call's
  // The default 50 us of timer slack would make the emulated disk slower
  // than asked; this thread syncs, so its sleeps should be exact.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) ==
         EINTR) {
  }
  errno = saved_errno;
  return rc;
}

}  // namespace

extern "C" int fdatasync(int fd) {
  static const auto real =
      reinterpret_cast<SyncFn>(dlsym(RTLD_NEXT, "fdatasync"));
  return SyncAtLeast(real, fd);
}

extern "C" int fsync(int fd) {
  static const auto real = reinterpret_cast<SyncFn>(dlsym(RTLD_NEXT, "fsync"));
  return SyncAtLeast(real, fd);
}
