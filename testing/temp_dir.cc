#include "lifecycle/testing/temp_dir.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace lifecycle_testing {
namespace {

absl::Mutex mu(absl::kConstInit);
std::string* parent ABSL_GUARDED_BY(mu) = nullptr;
int next ABSL_GUARDED_BY(mu) = 0;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "lifecycle_testing: ShortTempDir: %s: %s\n",
               what.c_str(), std::strerror(errno));
  std::abort();
}

int RemoveOne(const char* path, const struct stat*, int, struct FTW*) {
  std::remove(path);
  return 0;
}

void RemoveParent() {
  absl::MutexLock lock(&mu);
  if (parent != nullptr) {
    nftw(parent->c_str(), RemoveOne, 16, FTW_DEPTH | FTW_PHYS);
  }
}

}  // namespace

std::string ShortTempDir() {
  absl::MutexLock lock(&mu);
  if (parent == nullptr) {
    const char* base = std::getenv(kShortTempDirVariable);
    std::string pattern = absl::StrCat(
        base != nullptr && *base != '\0' ? base : "/tmp", "/lifecycle-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) Die(pattern);
    if (chmod(pattern.c_str(), 0755) != 0) Die(pattern);
    parent = new std::string(pattern);
    std::atexit(RemoveParent);
  }
  std::string dir = absl::StrCat(*parent, "/", next++);
  if (mkdir(dir.c_str(), 0755) != 0) Die(dir);
  return dir;
}

}  // namespace lifecycle_testing
