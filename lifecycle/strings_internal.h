// -----------------------------------------------------------------------------
// strings_internal.h
// -----------------------------------------------------------------------------
//
// Internal to the library. Its API speaks `std::string_view`; abseil's string
// functions take `absl::string_view`. Built from source (and in most
// distributions) abseil makes the two one type, but an abseil built with
// `ABSL_OPTION_USE_STD_STRING_VIEW 0`, as Debian's prebuilt one is, has its
// own type that does not convert. `AbslView` converts explicitly, at no cost,
// wherever a `std::string_view` meets abseil.

#ifndef LIFECYCLE_STRINGS_INTERNAL_H_
#define LIFECYCLE_STRINGS_INTERNAL_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace lifecycle::strings_internal {

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline std::string_view StdView(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

}  // namespace lifecycle::strings_internal

#endif  // LIFECYCLE_STRINGS_INTERNAL_H_
