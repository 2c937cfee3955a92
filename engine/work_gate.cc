#include "engine/work_gate.h"

#include <cassert>
#include <utility>

namespace cde {

WorkGate::Holder::Holder(const Holder& other) {
  if (other.gate_ != nullptr) *this = other.gate_->Enter();
}

WorkGate::Holder& WorkGate::Holder::operator=(const Holder& other) {
  if (this != &other) {
    Leave();
    if (other.gate_ != nullptr) *this = other.gate_->Enter();
  }
  return *this;
}

WorkGate::Holder::Holder(Holder&& other) noexcept
    : gate_(std::exchange(other.gate_, nullptr)) {}

WorkGate::Holder& WorkGate::Holder::operator=(Holder&& other) noexcept {
  if (this != &other) {
    Leave();
    gate_ = std::exchange(other.gate_, nullptr);
  }
  return *this;
}

void WorkGate::Holder::Leave() {
  if (WorkGate* gate = std::exchange(gate_, nullptr)) gate->Depart();
}

WorkGate::~WorkGate() { assert(count_ == 0 && "a holder outlives its gate"); }

WorkGate::Holder WorkGate::Enter() {
  Arrive();
  return Holder(this);
}

void WorkGate::Arrive() {
  ++count_;
  if (within_ != nullptr) within_->Arrive();
}

void WorkGate::Depart() {
  assert(count_ > 0);
  --count_;
  if (count_ == 0 && closed_ && !drained_) {
    drained_ = true;
    // Moved out first: the callback may destroy what owns this gate's
    // neighbours, and runs once.
    auto drained = std::move(on_drained_);
    on_drained_ = nullptr;
    drained();
  }
  // The outer gate last, so that it drains after the inner one.
  if (within_ != nullptr) within_->Depart();
}

void WorkGate::Close(std::function<void()> drained) {
  assert(!closed_ && "a gate closes once");
  closed_ = true;
  on_drained_ = std::move(drained);
  if (count_ == 0) {
    drained_ = true;
    auto fn = std::move(on_drained_);
    on_drained_ = nullptr;
    fn();
  }
}

}  // namespace cde
