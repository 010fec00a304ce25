// A minimal self-contained test framework: TEST registers a function, CHECK
// and CHECK_EQ record a failure (file:line and the values) without aborting,
// REQUIRE records a failure and returns from the test. No external libraries.
#pragma once

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace testing {

struct TestCase {
  const char* name;
  void (*fn)();
  const char* file;
  int line;
};

std::vector<TestCase>& registry();
// Records one failing check for the current test and prints it.
void report_failure(const char* file, int line, const std::string& message);
// Runs the tests whose name contains `filter` (all when empty); prints the
// summary line and returns the process exit status.
int run_all(const std::string& filter);

struct Registrar {
  Registrar(const char* name, void (*fn)(), const char* file, int line) {
    registry().push_back({name, fn, file, line});
  }
};

// ---- printing values in failure messages ----

template <typename T, typename = void>
struct Printable : std::false_type {};
template <typename T>
struct Printable<T,
                 std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

template <typename T>
std::string show(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                       std::is_same_v<T, unsigned char>) {
    return std::to_string(static_cast<int>(value));
  } else if constexpr (std::is_enum_v<T>) {
    return std::to_string(static_cast<long long>(value));
  } else if constexpr (std::is_same_v<T, std::string>) {
    // Escaped and shortened, so a failure stays on one line.
    std::string out = "\"";
    for (size_t i = 0; i < value.size() && i < 80; i++) {
      unsigned char ch = static_cast<unsigned char>(value[i]);
      if (ch == '\\' || ch == '"') {
        out += '\\';
        out += static_cast<char>(ch);
      } else if (ch >= 0x20 && ch < 0x7f) {
        out += static_cast<char>(ch);
      } else {
        static const char hex[] = "0123456789abcdef";
        out += "\\x";
        out += hex[ch >> 4];
        out += hex[ch & 15];
      }
    }
    out += value.size() > 80 ? "...\"" : "\"";
    out += " (" + std::to_string(value.size()) + " bytes)";
    return out;
  } else if constexpr (Printable<T>::value) {
    std::ostringstream out;
    out << value;
    return out.str();
  } else {
    return "<unprintable>";
  }
}

// Equality that compares mixed-sign integers by value (no sign-compare traps).
template <typename A, typename B>
bool equal(const A& a, const B& b) {
  if constexpr (std::is_integral_v<A> && std::is_integral_v<B> && !std::is_same_v<A, bool> &&
                !std::is_same_v<B, bool>) {
    if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) {
      return a == b;
    } else if constexpr (std::is_signed_v<A>) {
      return a >= 0 && static_cast<std::make_unsigned_t<A>>(a) == b;
    } else {
      return b >= 0 && a == static_cast<std::make_unsigned_t<B>>(b);
    }
  } else if constexpr (std::is_enum_v<A> || std::is_enum_v<B>) {
    return static_cast<long long>(a) == static_cast<long long>(b);
  } else {
    return a == b;
  }
}

}  // namespace testing

#define TEST_CONCAT_(a, b) a##b
#define TEST_CONCAT(a, b) TEST_CONCAT_(a, b)

#define TEST(name)                                                                           \
  static void test_fn_##name();                                                              \
  static ::testing::Registrar TEST_CONCAT(test_reg_, name)(#name, &test_fn_##name, __FILE__, \
                                                           __LINE__);                        \
  static void test_fn_##name()

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) ::testing::report_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_MSG(cond, msg)                                          \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::ostringstream test_msg_;                                   \
      test_msg_ << "CHECK(" #cond "): " << msg;                       \
      ::testing::report_failure(__FILE__, __LINE__, test_msg_.str()); \
    }                                                                 \
  } while (0)

#define CHECK_EQ(a, b)                                                                    \
  do {                                                                                    \
    const auto& test_a_ = (a);                                                            \
    const auto& test_b_ = (b);                                                            \
    if (!::testing::equal(test_a_, test_b_)) {                                            \
      ::testing::report_failure(__FILE__, __LINE__,                                       \
                                "CHECK_EQ(" #a ", " #b "): " + ::testing::show(test_a_) + \
                                    " != " + ::testing::show(test_b_));                   \
    }                                                                                     \
  } while (0)

#define REQUIRE(cond)                                                                     \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      ::testing::report_failure(__FILE__, __LINE__, "REQUIRE(" #cond ") - test stopped"); \
      return;                                                                             \
    }                                                                                     \
  } while (0)
