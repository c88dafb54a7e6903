// -----------------------------------------------------------------------------
// outputs_internal.h
// -----------------------------------------------------------------------------
//
// Internal to the library: how a file a test wrote into its outputs is named
// in a message. Under Bazel a test writes into TEST_UNDECLARED_OUTPUTS_DIR, a
// folder of its sandbox that is gone when the test ends; what stays is
// bazel-testlogs/PACKAGE/TEST[/shard_K_of_N]/test.outputs (zipped as
// outputs.zip), which is what a message must name. Shared by the harness
// (testing/harness.h's `DescribeTestOutput`) and `ProcessService`'s logs.

#ifndef LIFECYCLE_OUTPUTS_INTERNAL_H_
#define LIFECYCLE_OUTPUTS_INTERNAL_H_

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace lifecycle::outputs_internal {

// The value of environment variable `name`, or null when unset or empty.
inline const char* NonEmptyEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

// The shard this process runs of a sharded suite (Bazel's `shard_count` sets
// TEST_TOTAL_SHARDS and TEST_SHARD_INDEX; GoogleTest's own are GTEST_*), with
// `index` counted from 0; nullopt when the suite runs in one process.
struct Shard {
  int index;
  int total;
};
inline std::optional<Shard> CurrentShard() {
  for (auto [total_name, index_name] :
       {std::pair{"TEST_TOTAL_SHARDS", "TEST_SHARD_INDEX"},
        std::pair{"GTEST_TOTAL_SHARDS", "GTEST_SHARD_INDEX"}}) {
    const char* total_text = NonEmptyEnv(total_name);
    const char* index_text = NonEmptyEnv(index_name);
    Shard shard{0, 0};
    if (total_text != nullptr && index_text != nullptr &&
        absl::SimpleAtoi(total_text, &shard.total) &&
        absl::SimpleAtoi(index_text, &shard.index) && shard.total > 1) {
      return shard;
    }
  }
  return std::nullopt;
}

// How a message names the file at `path`: under Bazel, a file in the test's
// outputs is "FILE in this test's outputs (bazel-testlogs/PACKAGE/TEST
// [/shard_K_of_N]/test.outputs, zipped as outputs.zip)"; any other path is
// itself, as is every path when LIFECYCLE_OUTPUT_DIR (or its old name
// LIFECYCLE_SNAPSHOT_DIR) chose the folder.
inline std::string DescribeTestOutput(std::string_view path) {
  const char* outputs = NonEmptyEnv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (NonEmptyEnv("LIFECYCLE_OUTPUT_DIR") != nullptr ||
      NonEmptyEnv("LIFECYCLE_SNAPSHOT_DIR") != nullptr || outputs == nullptr ||
      !absl::StartsWith(absl::string_view(path.data(), path.size()),
                        absl::string_view(outputs))) {
    return std::string(path);
  }
  std::string file(path.substr(path.rfind('/') + 1));
  // TEST_BINARY is the test's path in its workspace ("testing/harness_test").
  std::string where = "bazel-testlogs/";
  if (const char* binary = NonEmptyEnv("TEST_BINARY")) {
    absl::string_view b(binary);
    absl::ConsumePrefix(&b, "./");
    absl::StrAppend(&where, b);
  } else {
    absl::StrAppend(&where, "...");
  }
  if (std::optional<Shard> shard = CurrentShard()) {
    absl::StrAppend(&where, "/shard_", shard->index + 1, "_of_", shard->total);
  }
  return absl::StrCat(file, " in this test's outputs (", where,
                      "/test.outputs, zipped as outputs.zip)");
}

}  // namespace lifecycle::outputs_internal

#endif  // LIFECYCLE_OUTPUTS_INTERNAL_H_
