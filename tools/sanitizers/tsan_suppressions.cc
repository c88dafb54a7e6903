// ThreadSanitizer suppressions compiled into every test binary (as Chromium
// does), so no file has to be found at run time.
//
// abseil 20220623 gives each thread a wait state (a futex word in a
// ThreadIdentity, allocated with its own mmap-based LowLevelAlloc) the first
// time the thread blocks on an absl::Mutex. The thread publishes it through
// the Mutex's own word, whose accesses abseil hides from TSan on purpose (the
// Mutex is reported to TSan as a lock instead). So when another thread later
// posts to that futex, TSan sees no edge from the initialisation and reports
// a race inside abseil's per-thread semaphore. Only reports whose stacks go
// through that machinery are suppressed; a race in our own code has no such
// frame.
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
  return "race:absl::lts_20220623::base_internal::DoAllocWithArena\n"
         "race:absl::lts_20220623::synchronization_internal::Waiter::\n"
         "race:absl::lts_20220623::synchronization_internal::"
         "CreateThreadIdentity\n";
}
#endif
