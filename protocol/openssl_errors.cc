#include "openssl_errors.h"

#include <openssl/err.h>

#include <cstring>

namespace tern {

std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    // A file that cannot be opened is a system error: errno's text says it.
    std::string one = ERR_SYSTEM_ERROR(e) ? std::strerror(ERR_GET_REASON(e))
                      : reason            ? reason
                                          : "error " + std::to_string(e);
    // "system lib", "PEM lib": which library failed below, said already.
    bool library =
        one.size() > 4 && one.compare(one.size() - 4, 4, " lib") == 0;
    if (library || text.find(one) != std::string::npos) continue;
    if (!text.empty()) text += "; ";
    text += one;
  }
  return text.empty() ? "unknown error" : text;
}

}  // namespace tern
