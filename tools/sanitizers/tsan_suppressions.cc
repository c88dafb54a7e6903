// ThreadSanitizer suppressions compiled into every test binary (as Chromium
// does), so no file has to be found at run time.
//
// abseil 20220623 allocates each thread's wait state with its own mmap-based
// allocator (LowLevelAlloc). TSan treats the mmap as a plain write by the
// allocating thread and then sees another thread's futex post to that memory
// without an edge it understands, although the Mutex orders them. Only reports
// that involve memory from that allocator are suppressed.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LIFECYCLE_TSAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define LIFECYCLE_TSAN_BUILD 1
#endif

#ifdef LIFECYCLE_TSAN_BUILD
extern "C" const char* __tsan_default_suppressions() {
  return "race:absl::lts_20220623::base_internal::DoAllocWithArena\n";
}
#endif
