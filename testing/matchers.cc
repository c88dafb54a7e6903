#include "lifecycle/testing/matchers.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle_testing {
namespace matchers_internal {
namespace {

struct Note {
  std::string path;
  int64_t failures;
  uint64_t generation;
};

// Tests examine a handful of failures each; the notes of a whole binary stay
// small.
struct Notes {
  absl::Mutex mu;
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  std::vector<Note> notes ABSL_GUARDED_BY(mu);
};

Notes& TheNotes() {
  static Notes* notes = new Notes();  // never destroyed
  return *notes;
}

}  // namespace

bool MatchFailure(const lifecycle::ServiceSnapshot& s, bool start_only,
                  const ::testing::Matcher<const absl::Status&>& m,
                  ::testing::MatchResultListener* listener) {
  bool failed = s.state == lifecycle::ServiceState::kFailed &&
                (!start_only ||
                 absl::StrContains(s.status.message(), "' failed to start: "));
  // Errors are bytes; a failure message is text (wait.h's ValidUtf8).
  const std::string status =
      lifecycle::strings_internal::ValidUtf8(lifecycle::StatusText(s.status));
  if (!failed) {
    *listener << "whose state is " << s.StateLabel() << " with status "
              << status << "\n"
              << s;
    return false;
  }
  *listener << "whose failure is " << status;
  bool matched = ::testing::ExplainMatchResult(m, s.status, listener);
  *listener << "\n" << s;
  if (matched) NoteFailuresExamined(s);
  return matched;
}

void NoteFailuresExamined(const lifecycle::ServiceSnapshot& snapshot) {
  Notes& n = TheNotes();
  absl::MutexLock lock(&n.mu);
  ++n.generation;
  n.notes.push_back(Note{snapshot.path, Deaths(snapshot), n.generation});
  // A composite's failure that a descendant's death caused: that death too.
  std::optional<std::string> origin =
      lifecycle::FailedServicePath(snapshot.last_failure);
  if (!origin) return;
  if (const lifecycle::ServiceSnapshot* s = snapshot.Find(*origin)) {
    n.notes.push_back(Note{s->path, Deaths(*s), n.generation});
  }
}

uint64_t ExaminedGeneration() {
  Notes& n = TheNotes();
  absl::MutexLock lock(&n.mu);
  return n.generation;
}

bool FailureExamined(std::string_view path, int64_t failures,
                     uint64_t generation) {
  Notes& n = TheNotes();
  absl::MutexLock lock(&n.mu);
  for (const Note& note : n.notes) {
    if (note.generation > generation && note.path == path &&
        note.failures >= failures) {
      return true;
    }
  }
  return false;
}

}  // namespace matchers_internal
}  // namespace lifecycle_testing
