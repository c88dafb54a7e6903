"""The repositories the lifecycle library needs, for a WORKSPACE.

In your WORKSPACE, after the repository that holds this library:

    load("@lifecycle//tools/bazel:deps.bzl", "lifecycle_deps")
    lifecycle_deps()

`lifecycle_deps()` declares abseil, GoogleTest, nlohmann-json, platforms and
bazel_skylib from their upstream release archives (pinned by sha256), each
through `maybe()`: a repository you declared before the call, under the same
name, is kept. Calling it twice is harmless.

Offline, with Debian's Bazel 4.2.3 and the sources `tools/setup.sh` installs,
call `lifecycle_offline_deps()` first: it declares the same repositories from
those local sources (and the three stand-ins Bazel 4.2.3 would otherwise
download for any C++ test), so `lifecycle_deps()` then keeps them and nothing
is downloaded. A missing local source fails with what to run, never with a
download that hangs.

The versions here and in MODULE.bazel are the same; tools/check_module.py
checks that in CI.
"""

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")
load("@bazel_tools//tools/build_defs/repo:utils.bzl", "maybe")

# name -> (version, sha256, strip_prefix, url). Versions follow the Bazel
# Central Registry's modules of the same software (see MODULE.bazel).
LIFECYCLE_DEPENDENCIES = {
    "com_google_absl": struct(
        module = "abseil-cpp",
        version = "20220623.1",
        sha256 = "91ac87d30cc6d79f9ab974c51874a704de9c2647c40f6932597329a282217ba8",
        strip_prefix = "abseil-cpp-20220623.1",
        url = "https://github.com/abseil/abseil-cpp/archive/refs/tags/20220623.1.tar.gz",
    ),
    "com_google_googletest": struct(
        module = "googletest",
        version = "1.12.1",
        sha256 = "81964fe578e9bd7c94dfdb09c8e4d6e6759e19967e397dbea48d1c10e45d0df2",
        strip_prefix = "googletest-release-1.12.1",
        url = "https://github.com/google/googletest/archive/refs/tags/release-1.12.1.tar.gz",
    ),
    "com_github_nlohmann_json": struct(
        module = "nlohmann_json",
        version = "3.11.2",
        sha256 = "d69f9deb6a75e2580465c6c4c5111b89c4dc2fa94e3a85fcd2ffcd9a143d9273",
        strip_prefix = "json-3.11.2",
        url = "https://github.com/nlohmann/json/archive/refs/tags/v3.11.2.tar.gz",
    ),
    "platforms": struct(
        module = "platforms",
        version = "0.0.6",
        sha256 = "5308fc1d8865406a49427ba24a9ab53087f17f5266a7aabbfc28823f3916e1ca",
        strip_prefix = "",
        url = "https://github.com/bazelbuild/platforms/releases/download/0.0.6/platforms-0.0.6.tar.gz",
    ),
    "bazel_skylib": struct(
        module = "bazel_skylib",
        version = "1.3.0",
        sha256 = "74d544d96f4a5bb630d465ca8bbcfe231e3594e5aae57e1edbf17a6eb3ca2506",
        strip_prefix = "",
        url = "https://github.com/bazelbuild/bazel-skylib/releases/download/1.3.0/bazel-skylib-1.3.0.tar.gz",
    ),
}

# Upstream nlohmann-json's own BUILD file differs between releases; this one
# gives the `:json` target the library uses, the same in every source.
_NLOHMANN_JSON_BUILD = Label("//tools/bazel:nlohmann_json.BUILD")

def lifecycle_deps():
    """Declares every repository the library needs that is not declared yet."""
    for name, dep in LIFECYCLE_DEPENDENCIES.items():
        maybe(
            http_archive,
            name = name,
            sha256 = dep.sha256,
            strip_prefix = dep.strip_prefix,
            urls = [dep.url],
            build_file = _NLOHMANN_JSON_BUILD if name == "com_github_nlohmann_json" else None,
        )

# --- Offline: Debian's packages and the sources tools/setup.sh installs -------

_SETUP_HINT = ("run tools/setup.sh from the lifecycle checkout (it installs " +
               "Debian's packages and fetches the abseil source), then build again")

def _local_source_impl(ctx):
    path = ctx.attr.path
    if ctx.attr.under_deps:
        deps = ctx.os.environ.get("LIFECYCLE_DEPS", "")
        if not deps:
            deps = ctx.os.environ.get("HOME", "") + "/.cache/lifecycle/deps"
        path = deps + "/" + path
    elif ctx.attr.in_lifecycle:
        # This repository's own folder, wherever the user's WORKSPACE put it.
        path = str(ctx.path(Label("//:WORKSPACE")).dirname) + "/" + path
    source = ctx.path(path)
    if not source.exists or (ctx.attr.marker and not ctx.path(path + "/" + ctx.attr.marker).exists):
        fail("lifecycle: the local source of @%s is missing at %s. Fix: %s." %
             (ctx.name, path, _SETUP_HINT))
    for entry in source.readdir():
        if entry.basename in ("BUILD", "BUILD.bazel") and ctx.attr.build_file:
            continue
        ctx.symlink(entry, entry.basename)
    if ctx.attr.build_file:
        ctx.symlink(ctx.attr.build_file, "BUILD.bazel")
    if not source.get_child("WORKSPACE").exists:
        ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)

_local_source = repository_rule(
    implementation = _local_source_impl,
    attrs = {
        "path": attr.string(mandatory = True),
        "under_deps": attr.bool(doc = "path is under $LIFECYCLE_DEPS (default ~/.cache/lifecycle/deps)"),
        "in_lifecycle": attr.bool(doc = "path is inside this repository"),
        "marker": attr.string(doc = "a file that must exist in a complete source"),
        "build_file": attr.label(allow_single_file = True),
    },
    environ = ["LIFECYCLE_DEPS", "HOME"],
    local = True,
)

def lifecycle_offline_deps():
    """Declares the repositories from local sources, for builds without internet.

    Call it before `lifecycle_deps()`. Every declaration goes through `maybe()`,
    so a repository you declared yourself (a real rules_cc, your own abseil)
    is kept.
    """

    # Bazel 4.2.3 downloads these three for any C++ test; small stand-ins keep
    # it offline. Only for Bazel 4.2.3 offline: a real rules_cc declared
    # earlier wins.
    for shim in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        maybe(_local_source, name = shim, path = "tools/bazel/" + shim, in_lifecycle = True)
    maybe(
        _local_source,
        name = "platforms",
        path = "/usr/share/bazel/tools/platforms",
        marker = "os/BUILD",
    )
    maybe(
        _local_source,
        name = "bazel_skylib",
        path = "/usr/share/bazel/tools/skylib",
        marker = "lib/selects.bzl",
    )
    maybe(
        _local_source,
        name = "com_google_absl",
        path = "abseil-" + LIFECYCLE_DEPENDENCIES["com_google_absl"].version,
        under_deps = True,
        marker = ".complete",
    )
    maybe(
        _local_source,
        name = "com_google_googletest",
        path = "/usr/src/googletest",
        marker = "googletest/src/gtest.cc",
        build_file = Label("//tools/bazel:googletest.BUILD"),
    )

    # Debian's nlohmann-json3-dev is header-only on the system include path.
    maybe(
        _local_source,
        name = "com_github_nlohmann_json",
        path = "tools/bazel/nlohmann_json",
        in_lifecycle = True,
    )
