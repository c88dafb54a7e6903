// -----------------------------------------------------------------------------
// test_signal.h (deprecated)
// -----------------------------------------------------------------------------
//
// `TestSignal` moved to the production package: include
// "lifecycle/test_signal.h", depend on `//lifecycle:test_signal` (CMake:
// `lifecycle::test_signal`) and write `lifecycle::TestSignal<T>`. This header,
// its target `//testing:test_signal` and the alias
// `lifecycle_testing::TestSignal<T>` keep code written for the old place
// compiling, with a deprecation warning, for one release; they will be
// removed in the release after 0.3.0 (CHANGELOG.md).
//
// Thread safety: as `lifecycle::TestSignal` (all members thread-safe).

#ifndef LIFECYCLE_TESTING_TEST_SIGNAL_H_
#define LIFECYCLE_TESTING_TEST_SIGNAL_H_

#include "lifecycle/test_signal.h"

namespace lifecycle_testing {

template <typename T>
using TestSignal [[deprecated(
    "TestSignal moved: include \"lifecycle/test_signal.h\" and use "
    "lifecycle::TestSignal")]] = lifecycle::TestSignal<T>;

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_TEST_SIGNAL_H_
