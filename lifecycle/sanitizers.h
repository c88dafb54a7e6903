// -----------------------------------------------------------------------------
// sanitizers.h
// -----------------------------------------------------------------------------
//
// Which sanitizer this translation unit is built with, for the few places that
// must behave differently under one (longer waits, no stack capture under
// ThreadSanitizer, its suppressions). GCC says so with `__SANITIZE_*__`, clang
// with `__has_feature(...)`; this header asks both, once:
//
//   LIFECYCLE_TSAN, LIFECYCLE_ASAN, LIFECYCLE_MSAN   1 or 0, for #if
//   lifecycle::kThreadSanitizer, kAddressSanitizer, kMemorySanitizer,
//   kAnySanitizer                                    the same, for C++ code
//
// Thread safety: constants only.

#ifndef LIFECYCLE_SANITIZERS_H_
#define LIFECYCLE_SANITIZERS_H_

#if defined(__has_feature)
#define LIFECYCLE_HAS_FEATURE(x) __has_feature(x)
#else
#define LIFECYCLE_HAS_FEATURE(x) 0
#endif

#if defined(__SANITIZE_THREAD__) || LIFECYCLE_HAS_FEATURE(thread_sanitizer)
#define LIFECYCLE_TSAN 1
#else
#define LIFECYCLE_TSAN 0
#endif

#if defined(__SANITIZE_ADDRESS__) || LIFECYCLE_HAS_FEATURE(address_sanitizer)
#define LIFECYCLE_ASAN 1
#else
#define LIFECYCLE_ASAN 0
#endif

#if LIFECYCLE_HAS_FEATURE(memory_sanitizer)
#define LIFECYCLE_MSAN 1
#else
#define LIFECYCLE_MSAN 0
#endif

namespace lifecycle {

inline constexpr bool kThreadSanitizer = LIFECYCLE_TSAN;
inline constexpr bool kAddressSanitizer = LIFECYCLE_ASAN;
inline constexpr bool kMemorySanitizer = LIFECYCLE_MSAN;
inline constexpr bool kAnySanitizer =
    kThreadSanitizer || kAddressSanitizer || kMemorySanitizer;

}  // namespace lifecycle

#endif  // LIFECYCLE_SANITIZERS_H_
