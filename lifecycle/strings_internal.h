// -----------------------------------------------------------------------------
// strings_internal.h
// -----------------------------------------------------------------------------
//
// Internal to the library. Its API speaks `std::string_view`; abseil's string
// functions take `absl::string_view`. Built from source (and in most
// distributions) abseil makes the two one type, but an abseil built with
// `ABSL_OPTION_USE_STD_STRING_VIEW 0`, as Debian's prebuilt one is, has its
// own type that does not convert. `AbslView` converts explicitly, at no cost,
// wherever a `std::string_view` meets abseil. `ValidUtf8` and
// `DurationText` write text and durations as every report does.

#ifndef LIFECYCLE_STRINGS_INTERNAL_H_
#define LIFECYCLE_STRINGS_INTERNAL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace lifecycle::strings_internal {

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline std::string_view StdView(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

// The length of the valid UTF-8 sequence at the start of `text`, or 0.
inline size_t Utf8Length(std::string_view text) {
  auto byte = [&](size_t i) {
    return i < text.size() ? static_cast<unsigned char>(text[i]) : 0;
  };
  auto cont = [&](size_t i) { return (byte(i) & 0xC0) == 0x80; };
  const unsigned char b = byte(0);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return cont(1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    const unsigned char lo = b == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b == 0xED ? 0x9F : 0xBF;
    return byte(1) >= lo && byte(1) <= hi && cont(2) ? 3 : 0;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    const unsigned char lo = b == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b == 0xF4 ? 0x8F : 0xBF;
    return byte(1) >= lo && byte(1) <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD,
// as the snapshot's JSON does: names and errors are bytes, reports are text
// (an XML parser stops at an invalid byte of a test.xml, and a dashboard
// loses the whole target's results).
inline std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t n = Utf8Length(text.substr(i));
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.data() + i, n);
      i += n;
    }
  }
  return out;
}

// `absl::FormatDuration`, with a unit also for zero: "0s", never a bare "0".
inline std::string DurationText(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

}  // namespace lifecycle::strings_internal

#endif  // LIFECYCLE_STRINGS_INTERNAL_H_
