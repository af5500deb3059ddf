#include "traceparent.h"

namespace tern::trace {

namespace {

bool lower_hex(std::string_view text) {
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool all_zero(std::string_view text) {
  return text.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

bool parse(std::string_view text, Traceparent* out) {
  // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
  if (text.size() < 55 || text[2] != '-' || text[35] != '-' || text[52] != '-')
    return false;
  std::string_view version = text.substr(0, 2), trace_id = text.substr(3, 32),
                   parent_id = text.substr(36, 16), flags = text.substr(53, 2);
  if (!lower_hex(version) || version == "ff" || !lower_hex(trace_id) ||
      all_zero(trace_id) || !lower_hex(parent_id) || all_zero(parent_id) ||
      !lower_hex(flags))
    return false;
  // Version 00 is exactly 55 characters; a later one may add fields.
  if (version == "00" ? text.size() != 55 : text.size() > 55 && text[55] != '-')
    return false;
  out->trace_id.assign(trace_id);
  out->parent_id.assign(parent_id);
  out->flags = unsigned(std::stoul(std::string(flags), nullptr, 16));
  return true;
}

std::string format(const Traceparent& parent) {
  static const char kHex[] = "0123456789abcdef";
  std::string text = "00-" + parent.trace_id + "-" + parent.parent_id + "-";
  text += kHex[(parent.flags >> 4) & 15];
  text += kHex[parent.flags & 15];
  return text;
}

std::string trace_id_of(
    const flatbuffers::Vector<flatbuffers::Offset<wire::Header>>* headers) {
  if (headers == nullptr) return "";
  for (const wire::Header* h : *headers) {
    if (h->name() == nullptr || h->name()->string_view() != kTraceparentHeader)
      continue;
    Traceparent parent;
    if (h->value() != nullptr &&
        parse(
            std::string_view(reinterpret_cast<const char*>(h->value()->data()),
                             h->value()->size()),
            &parent))
      return parent.trace_id;
    return "";
  }
  return "";
}

}  // namespace tern::trace
