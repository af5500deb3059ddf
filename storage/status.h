// Status: the result of a storage operation. Errors are values here, never
// silent: every call that can fail returns one, and the message is written for
// the operator who will read it in a log.
#pragma once

#include <string>
#include <utility>

namespace tern::storage {

class Status {
 public:
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }

  bool is_ok() const { return !failed_; }
  const std::string& message() const { return message_; }

 private:
  Status() = default;
  explicit Status(std::string message)
      : failed_(true), message_(std::move(message)) {}

  bool failed_ = false;
  std::string message_;
};

}  // namespace tern::storage
