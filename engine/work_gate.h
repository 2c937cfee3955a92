// WorkGate: what a shutdown waits for, after Seastar's seastar::gate. Every
// asynchronous path of the engine (a commit, a read off the loop thread, an
// attempt in flight) holds a WorkGate::Holder while it runs; Close() calls back
// once the last holder has left. Nothing counts by hand, so no path can
// forget to count itself down.
//
// A gate may sit within another: a holder of the inner gate holds the outer
// one too. The engine's attempts gate (its count() is the attempts in
// flight) sits within its work gate (what shutdown waits for).
//
// (Not to be confused with the rate-limit and breaker gates an attempt
// waits at: those hold attempts back, this one holds shutdown back.)
//
// Thread safety: loop thread only. Holders are copyable (a copy enters
// again) so that they ride in std::function continuations; copy them on the
// loop thread only.
#ifndef CDE_ENGINE_WORK_GATE_H_
#define CDE_ENGINE_WORK_GATE_H_

#include <cstddef>
#include <functional>

namespace cde {

class WorkGate {
 public:
  class Holder {
   public:
    Holder() = default;  // holds nothing
    Holder(const Holder& other);
    Holder& operator=(const Holder& other);
    Holder(Holder&& other) noexcept;
    Holder& operator=(Holder&& other) noexcept;
    ~Holder() { Leave(); }

    // Leaves the gate now rather than at destruction; a no-op if empty.
    void Leave();
    bool holds() const { return gate_ != nullptr; }

   private:
    friend class WorkGate;
    explicit Holder(WorkGate* gate) : gate_(gate) {}
    WorkGate* gate_ = nullptr;
  };

  explicit WorkGate(WorkGate* within = nullptr) : within_(within) {}
  WorkGate(const WorkGate&) = delete;
  WorkGate& operator=(const WorkGate&) = delete;
  // REQUIRES: count() == 0 (every holder has left).
  ~WorkGate();

  // Always admits: work that continues work already inside (the commit of
  // an attempt's result during a shutdown) must get in after Close. Callers
  // that take new work refuse it themselves once closed().
  Holder Enter();
  size_t count() const { return count_; }
  bool closed() const { return closed_; }
  // True once Close's callback has run: nothing holds the gate any more,
  // and whatever it guarded may be gone.
  bool drained() const { return drained_; }

  // `drained` runs once count() is 0: now if it already is, else when the
  // last holder leaves. REQUIRES: not closed().
  void Close(std::function<void()> drained);

 private:
  void Arrive();
  void Depart();

  WorkGate* const within_;
  size_t count_ = 0;
  bool closed_ = false;
  bool drained_ = false;
  std::function<void()> on_drained_;
};

}  // namespace cde

#endif  // CDE_ENGINE_WORK_GATE_H_
