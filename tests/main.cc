// The test runner: doctest's own main. Every tests/*_test.cc links into it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
