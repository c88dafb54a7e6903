#!/bin/sh
echo "this test always fails"
exit 1
