"""Offline stand-in for @rules_cc: Bazel 4.2.3 loads it, the rules are native."""

def cc_binary(**attrs):
    # buildifier: disable=native-cc-binary
    native.cc_binary(**attrs)

def cc_library(**attrs):
    # buildifier: disable=native-cc-library
    native.cc_library(**attrs)

def cc_test(**attrs):
    # buildifier: disable=native-cc-test
    native.cc_test(**attrs)

def cc_import(**attrs):
    # buildifier: disable=native-cc-import
    native.cc_import(**attrs)

def cc_proto_library(**attrs):
    # buildifier: disable=native-cc-proto-library
    native.cc_proto_library(**attrs)

def cc_toolchain(**attrs):
    # buildifier: disable=native-cc-toolchain
    native.cc_toolchain(**attrs)

def cc_toolchain_suite(**attrs):
    # buildifier: disable=native-cc-toolchain-suite
    native.cc_toolchain_suite(**attrs)

def objc_library(**attrs):
    # buildifier: disable=native-cc-objc-library
    native.objc_library(**attrs)
