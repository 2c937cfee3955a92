#include "storage/status.h"

namespace cde {

std::string_view Status::CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      return "Not found";
    case Code::kInvalidArgument:
      return "Invalid argument";
    case Code::kCorruption:
      return "Corruption";
    case Code::kIOError:
      return "IO error";
    case Code::kBusy:
      return "Busy";
    case Code::kAborted:
      return "Aborted";
    case Code::kShutdownInProgress:
      return "Shutdown in progress";
    case Code::kNotSupported:
      return "Not supported";
    case Code::kAlreadyExists:
      return "Already exists";
    case Code::kNoSpace:
      return "No space";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(CodeName(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, msg);
}

}  // namespace cde
