"""Offline stand-in for @rules_java: Bazel 4.2.3 registers it, the rules are native."""

def java_binary(**attrs):
    # buildifier: disable=native-java-binary
    native.java_binary(**attrs)

def java_import(**attrs):
    # buildifier: disable=native-java-import
    native.java_import(**attrs)

def java_library(**attrs):
    # buildifier: disable=native-java-library
    native.java_library(**attrs)

def java_plugin(**attrs):
    # buildifier: disable=native-java-plugin
    native.java_plugin(**attrs)

def java_test(**attrs):
    # buildifier: disable=native-java-test
    native.java_test(**attrs)

def java_toolchain(**attrs):
    # buildifier: disable=native-java-toolchain
    native.java_toolchain(**attrs)

def java_runtime(**attrs):
    # buildifier: disable=native-java-runtime
    native.java_runtime(**attrs)
