// The doctest main for marina_unit_tests; the test cases live in the other files here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
