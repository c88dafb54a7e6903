// -----------------------------------------------------------------------------
// temp_dir.h
// -----------------------------------------------------------------------------
//
// `ShortTempDir()`: a new, empty directory for a test, with a path short
// enough for the Unix sockets a server listens on (a socket path has at most
// 107 bytes; Bazel's $TEST_TMPDIR alone is often longer):
//
//   std::string dir = lifecycle_testing::ShortTempDir();  // /tmp/lifecycle-Xk2c9a/3
//   redis.args = {"--port", "0", "--unixsocket", dir + "/redis.sock"};
//
// The directories of a process share one parent, made on the first call under
// $LIFECYCLE_SHORT_TMPDIR, else /tmp, readable by other users (a server that
// runs as another user may live below); the parent and everything in it are
// removed when the process exits normally.
//
// Thread safety: `ShortTempDir()` is thread-safe.

#ifndef LIFECYCLE_TESTING_TEMP_DIR_H_
#define LIFECYCLE_TESTING_TEMP_DIR_H_

#include <string>

namespace lifecycle_testing {

// The environment variable that replaces /tmp as the parent's place.
inline constexpr char kShortTempDirVariable[] = "LIFECYCLE_SHORT_TMPDIR";

// A new, empty directory (mode 0755), or aborts naming the error.
std::string ShortTempDir();

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_TEMP_DIR_H_
