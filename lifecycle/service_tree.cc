#include "lifecycle/service_tree.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "lifecycle/dependency_graph.h"

namespace lifecycle {

using strings_internal::AbslView;

namespace base_service_internal {

absl::Mutex& TreeMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}

absl::Status ValidateName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("a service name must not be empty");
  }
  if (name.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "service name '", name, "' contains '/', which separates paths"));
  }
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service name '", absl::CHexEscape(name),
          "' contains a control character, which would break reports"));
    }
  }
  return absl::OkStatus();
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "lifecycle: FATAL: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string_view NameOf(const Child& child) {
  return child.base != nullptr ? child.base->Name() : child.service->Name();
}

void SetPaths(ServiceSnapshot& s, std::string path) {
  s.path = std::move(path);
  for (ServiceSnapshot& child : s.children) {
    SetPaths(child, absl::StrCat(s.path, "/", child.name));
  }
}

void RequestChildStop(Service& child) {
  static_cast<ChildHandle&>(child).RequestStop();
}

}  // namespace base_service_internal

using base_service_internal::Child;
using base_service_internal::ChildHandle;
using base_service_internal::ChildIndex;
using base_service_internal::NameOf;
using base_service_internal::TreeMutex;
using base_service_internal::ValidateName;

BaseService* BaseService::Parent() const {
  absl::MutexLock lock(&mu_);
  return parent_;
}

std::string BaseService::Path() const {
  absl::MutexLock tree(&TreeMutex());
  return PathLocked();
}

std::string BaseService::PathLocked() const {
  // Under TreeMutex every parent_ is valid: a service leaving the tree (its
  // destructor) clears its children's parent_ under TreeMutex first.
  absl::InlinedVector<std::string_view, 8> names;  // no allocation
  for (const BaseService* node = this; node != nullptr; node = node->Parent()) {
    names.push_back(node->name_);
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!path.empty()) path += '/';
    path.append(it->data(), it->size());
  }
  return path;
}

void BaseService::LeaveTree() {
  // The parent forgets this service, the children their parent.
  absl::MutexLock tree(&TreeMutex());
  BaseService* parent;
  std::list<Child> children;
  {
    absl::MutexLock lock(&mu_);
    parent = parent_;
    children.swap(children_);
    child_index_.reset();
    parent_ = nullptr;
    parent_lifeline_.reset();
  }
  if (parent != nullptr) {
    absl::MutexLock lock(&parent->mu_);
    // The index exists: this service was added as a child.
    ChildIndex& index = *parent->child_index_;
    auto self = index.by_service.find(static_cast<const Service*>(this));
    if (self != index.by_service.end()) {
      std::list<Child>::iterator child = self->second;
      if (parent->dependencies_ != nullptr) {
        parent->dependencies_->Remove(child->service);
      }
      index.names.erase(name_);
      index.by_service.erase(self);
      parent->children_.erase(child);
    }
  }
  for (const Child& child : children) {
    if (child.base == nullptr) continue;
    absl::MutexLock lock(&child.base->mu_);
    if (child.base->parent_ == this) {
      child.base->parent_ = nullptr;
      child.base->parent_lifeline_.reset();
    }
  }
}

absl::Status BaseService::AddChild(Service& child) {
  if (&child == this) {
    return absl::InvalidArgumentError(
        absl::StrCat("service '", name_, "' cannot be its own child"));
  }
  if (absl::Status s = ValidateName(AbslView(child.Name())); !s.ok()) return s;
  auto* base = dynamic_cast<BaseService*>(&child);
  absl::MutexLock tree(&TreeMutex());
  if (base != nullptr) {
    if (BaseService* other = base->Parent(); other != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service '", AbslView(child.Name()), "' already has a parent, '",
          other->PathLocked(), "': a service belongs to one tree"));
    }
    for (const BaseService* node = this; node != nullptr;
         node = node->Parent()) {
      if (node == base) {
        return absl::InvalidArgumentError(absl::StrCat(
            "adding '", AbslView(child.Name()), "' as a child of '",
            PathLocked(), "' would make a cycle: '", AbslView(child.Name()),
            "' is already an ancestor of it"));
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (child_index_ == nullptr) child_index_ = std::make_unique<ChildIndex>();
    if (!child_index_->names.insert(std::string(child.Name())).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("service '", name_, "' already has a child named '",
                       AbslView(child.Name()), "'"));
    }
    Child entry;
    entry.service = &child;
    entry.base = base;
    if (base != nullptr) entry.lifeline = base->lifeline_;
    children_.push_back(std::move(entry));
    child_index_->by_service[&child] = std::prev(children_.end());
    if (dependencies_ != nullptr) dependencies_->children.insert(&child);
  }
  if (base != nullptr) {
    absl::MutexLock lock(&base->mu_);
    base->parent_ = this;
    base->parent_lifeline_ = lifeline_;
  }
  return absl::OkStatus();
}

std::vector<Service*> BaseService::Children() const {
  absl::MutexLock lock(&mu_);
  std::vector<Service*> children;
  for (const Child& child : children_) children.push_back(child.service);
  return children;
}

std::vector<std::unique_ptr<Service>> BaseService::ChildHandles() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::unique_ptr<Service>> handles;
  handles.reserve(children_.size());
  for (const Child& child : children_) {
    if (dependencies_ == nullptr) {
      handles.push_back(std::make_unique<ChildHandle>(child, this));
    } else {
      Child copy = child;
      copy.depends_on = dependencies_->NamesOn(child.service);
      handles.push_back(std::make_unique<ChildHandle>(std::move(copy), this));
    }
  }
  return handles;
}

ServiceSnapshot BaseService::Snapshot() const { return SnapshotAt(Path()); }

ServiceSnapshot BaseService::SnapshotAt(std::string path) const {
  ServiceSnapshot s;
  s.name = name_;
  s.path = std::move(path);
  std::vector<std::unique_ptr<Service>> children = ChildHandles();
  {
    absl::MutexLock lock(&mu_);
    FillSnapshotLocked(s);
  }
  for (const auto& child : children) {
    ServiceSnapshot c;
    // A child destroyed since the list was taken has left the tree.
    const auto& handle = static_cast<const ChildHandle&>(*child);
    if (!handle.SnapshotIfAlive(c, s.path)) continue;
    c.restart_count = std::max(c.restart_count, handle.restarts());
    c.depends_on = handle.depends_on();
    s.children.push_back(std::move(c));
  }
  return s;
}

}  // namespace lifecycle
