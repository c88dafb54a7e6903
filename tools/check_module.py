#!/usr/bin/env python3
"""Checks that MODULE.bazel and tools/bazel/deps.bzl name the same dependencies.

WORKSPACE users get the library's dependencies from `lifecycle_deps()` (deps.bzl);
bzlmod users from MODULE.bazel. No Bazel that reads MODULE.bazel runs here, so this
static check keeps the two in step: every entry of deps.bzl's LIFECYCLE_DEPENDENCIES
must be a `bazel_dep` of MODULE.bazel with the same module name and version, whose
repository name (`repo_name`, or the module name) is the one our labels use, and
MODULE.bazel must declare nothing else but BZLMOD_ONLY (what Bazel itself gives a
WORKSPACE build).

Prints one "ok"/"FAIL" line per dependency and "N passed, N failed"; exits 1 on a
mismatch. `--self-test` also checks that a changed version is caught.
"""

import ast
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# In MODULE.bazel only: a WORKSPACE build gets these from Bazel itself.
BZLMOD_ONLY = {"rules_cc"}


def workspace_deps(text):
    """{repo name: (module, version)} from deps.bzl's LIFECYCLE_DEPENDENCIES."""
    block = re.search(r"LIFECYCLE_DEPENDENCIES = \{(.*?)\n\}", text, re.S)
    if not block:
        raise SystemExit("check_module: no LIFECYCLE_DEPENDENCIES in deps.bzl")
    deps = {}
    for name, body in re.findall(r'"([\w-]+)": struct\((.*?)\)', block.group(1), re.S):
        fields = dict(re.findall(r'(\w+) = "([^"]*)"', body))
        deps[name] = (fields.get("module"), fields.get("version"))
    return deps


def module_deps(text):
    """{repo name: (module, version)} from MODULE.bazel's bazel_dep calls."""
    deps = {}
    for call in re.findall(r"bazel_dep\((.*?)\)", text, re.S):
        args = {}
        for part in call.split(","):
            if "=" in part:
                key, value = part.split("=", 1)
                args[key.strip()] = ast.literal_eval(value.strip())
        repo = args.get("repo_name", args["name"])
        deps[repo] = (args["name"], args.get("version"))
    return deps


def compare(workspace, module):
    """Returns [(ok, message)] for every dependency named by either file."""
    results = []
    for repo in sorted(set(workspace) | set(module)):
        if repo not in module:
            results.append((False, f"@{repo}: in deps.bzl, missing from MODULE.bazel"))
        elif repo not in workspace and repo in BZLMOD_ONLY:
            results.append((True, f"@{repo}: {module[repo][0]} {module[repo][1]} "
                                  "(bzlmod only: Bazel provides it to WORKSPACE builds)"))
        elif repo not in workspace:
            results.append((False, f"@{repo}: in MODULE.bazel, missing from deps.bzl"))
        elif workspace[repo] != module[repo]:
            results.append((False, f"@{repo}: deps.bzl has {workspace[repo]}, "
                                   f"MODULE.bazel has {module[repo]}"))
        else:
            results.append((True, f"@{repo}: {module[repo][0]} {module[repo][1]}"))
    return results


def main(argv):
    workspace = workspace_deps((ROOT / "tools/bazel/deps.bzl").read_text())
    module = module_deps((ROOT / "MODULE.bazel").read_text())
    results = compare(workspace, module)
    if "--self-test" in argv:
        repo = sorted(module)[0]
        changed = dict(module, **{repo: (module[repo][0], "0.0.0-changed")})
        caught = not all(ok for ok, _ in compare(workspace, changed))
        results.append((caught, "self-test: a changed version is reported"))
    for ok, message in results:
        print(("ok " if ok else "FAIL ") + message)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
