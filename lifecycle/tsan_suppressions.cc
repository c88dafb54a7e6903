// ThreadSanitizer suppressions that travel with the library: every target of
// lifecycle/ depends on this file (through :signal, or :test_signal, which is
// header-only and used on its own), so a user's plain
// `-fsanitize=thread` build of a test that uses the library needs no flag and
// no suppressions file.
//
// Why they are needed (the root cause, found by running without them):
// abseil before its 2023 releases gives each thread a wait state (a futex word
// inside a ThreadIdentity) the first time the thread blocks on an
// `absl::Mutex`. The thread initialises it with plain writes, then publishes
// it only through the Mutex's own word, which abseil hides from TSan on
// purpose (the Mutex is reported to TSan as a lock instead). When another
// thread later wakes it (`Waiter::Post`, a futex add), TSan sees no
// happens-before edge from the initialisation and reports a race inside
// abseil's per-thread semaphore. Every `Signal` wait here blocks on an
// `absl::Mutex`, so any test that waits on a service meets it. Newer abseil
// releases suppress the same report inside abseil.
//
// Only reports whose stacks go through that machinery are suppressed; the
// patterns match any abseil version (no inline namespace), and a race in the
// library's or the user's own code has no such frame.
//
// The definition is weak: a program that defines its own
// `__tsan_default_suppressions` keeps it (no duplicate-symbol error) and should
// add the lines below to it.
#include "lifecycle/sanitizers.h"

#if LIFECYCLE_TSAN
extern "C" __attribute__((weak, visibility("default"))) const char*
__tsan_default_suppressions() {
  return "race:synchronization_internal::Waiter::\n"
         "race:base_internal::DoAllocWithArena\n"
         "race:synchronization_internal::CreateThreadIdentity\n";
}
#endif
