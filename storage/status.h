// Status and Result<T>: the error type of every fallible call in storage/ and
// engine/. Exceptions stay at the edges (api/, tools/), where library errors
// (nlohmann, CLI11, curl) are caught and converted into a Status.
//
// A Status says what went wrong and where ("cf 'sagas' key '01J...': bad
// record version 9"). Both types are [[nodiscard]]: dropping an error takes an
// explicit, greppable IgnoreError().
#ifndef CDE_STORAGE_STATUS_H_
#define CDE_STORAGE_STATUS_H_

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cde {

class [[nodiscard]] Status {
 public:
  // Explicit values: codes are printed in logs and mapped to API error codes.
  enum class Code : unsigned char {
    kOk = 0,
    kNotFound = 1,
    kInvalidArgument = 2,
    kCorruption = 3,
    kIOError = 4,
    kBusy = 5,
    kAborted = 6,
    kShutdownInProgress = 7,
    kNotSupported = 8,
    kAlreadyExists = 9,
    kNoSpace = 10,
  };

  Status() = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) {
    return Status(Code::kNotFound, msg);
  }
  static Status InvalidArgument(std::string_view msg) {
    return Status(Code::kInvalidArgument, msg);
  }
  static Status Corruption(std::string_view msg) {
    return Status(Code::kCorruption, msg);
  }
  static Status IOError(std::string_view msg) {
    return Status(Code::kIOError, msg);
  }
  static Status Busy(std::string_view msg) { return Status(Code::kBusy, msg); }
  static Status Aborted(std::string_view msg) {
    return Status(Code::kAborted, msg);
  }
  static Status ShutdownInProgress(std::string_view msg) {
    return Status(Code::kShutdownInProgress, msg);
  }
  static Status NotSupported(std::string_view msg) {
    return Status(Code::kNotSupported, msg);
  }
  static Status AlreadyExists(std::string_view msg) {
    return Status(Code::kAlreadyExists, msg);
  }
  static Status NoSpace(std::string_view msg) {
    return Status(Code::kNoSpace, msg);
  }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsNoSpace() const { return code_ == Code::kNoSpace; }
  bool IsNotSupported() const { return code_ == Code::kNotSupported; }
  bool IsAlreadyExists() const { return code_ == Code::kAlreadyExists; }

  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "Corruption: cf 'sagas' key '01J...': ..." or "OK".
  std::string ToString() const;
  static std::string_view CodeName(Code code);

  // Returns a copy whose message is prefixed with `context` ("opening store
  // at ./cde-data: IO error: ...").
  Status WithContext(std::string_view context) const;

  // Marks a deliberately ignored error, so that it can be found with grep.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Status(Code code, std::string_view msg) : code_(code), message_(msg) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : rep_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : rep_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(rep_).ok() && "Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(rep_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(rep_);
  }

  T& value() & {
    assert(ok());
    return std::get<T>(rep_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(rep_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(rep_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> rep_;
};

}  // namespace cde

// Returns early from the enclosing function when `expr` is not OK.
#define CDE_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::cde::Status cde_status_ = (expr);        \
    if (!cde_status_.ok()) return cde_status_; \
  } while (0)

#endif  // CDE_STORAGE_STATUS_H_
