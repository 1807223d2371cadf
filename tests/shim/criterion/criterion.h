/* criterion.h - a thin Criterion-compatible shim for the two builds where
 * Criterion cannot run: mingw-w64 (not packaged; the Windows suite runs under
 * wine) and ThreadSanitizer (Criterion's inheritable arena fails to map under
 * TSan, Snaipe/Criterion#274). Those builds put tests/shim first on the
 * include path. The test files in tests/ use a small subset of Criterion,
 * implemented here, so the very same files build everywhere. See
 * tests/windows/README.md.
 *
 * Supported: Test(suite, name[, .timeout = s, .init = f, .fini = f,
 * .disabled = b, .description = "..."]), cr_assert, cr_assert_not,
 * cr_assert_eq/neq/lt/leq/gt/geq, cr_assert_null/not_null, cr_assert_str_eq/
 * str_neq, cr_assert_fail, cr_fatal, cr_skip_test, cr_log_info/warn/error,
 * and the cr_expect* forms (record a failure, keep going). Each assertion
 * takes an optional printf-style message. The runner (runner.c) runs every
 * test in its own process, like Criterion's fork-per-test, so an assertion,
 * a crash or a timeout ends that test only. */
#ifndef OVL_CRITERION_SHIM_H
#define OVL_CRITERION_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

struct criterion_test_extra_data {
    double timeout; /* seconds; 0 = the runner's default */
    void (*init)(void);
    void (*fini)(void);
    int disabled;
    const char *description;
    int exit_code; /* accepted for source compatibility */
    int signal;    /* accepted for source compatibility */
    int sentinel_;
};

struct crs_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct criterion_test_extra_data data;
    struct crs_test *next;
};

void crs_register(struct crs_test *t);

/* Assertion back-end (runner.c). `fatal` ends the test at once. */
void crs_assert_fail(int fatal, const char *file, int line, const char *expr, const char *values,
                     const char *fmt, ...) __attribute__((format(gnu_printf, 6, 7)));
void crs_assert_fatal(const char *file, int line, const char *expr, const char *values,
                      const char *fmt, ...) __attribute__((format(gnu_printf, 5, 6), noreturn));
/* `fatal` is always a constant: the dead branch goes, and the compiler
 * knows a failed cr_assert does not return. */
#define CRS_FAIL_(fatal, file, line, expr, values, ...)                                            \
  do {                                                                                             \
    if (fatal) crs_assert_fatal(file, line, expr, values, __VA_ARGS__);                            \
    else crs_assert_fail(0, file, line, expr, values, __VA_ARGS__);                                \
  } while (0)
void crs_skip(const char *fmt, ...) __attribute__((format(gnu_printf, 1, 2), noreturn));
void crs_log(const char *level, const char *fmt, ...) __attribute__((format(gnu_printf, 2, 3)));

/* Value formatting for failure messages: one evaluation of each operand. */
const char *crs_fmt_ll(char *buf, long long v);
const char *crs_fmt_ull(char *buf, unsigned long long v);
const char *crs_fmt_ptr(char *buf, const void *v);
const char *crs_fmt_dbl(char *buf, double v);
#define CRS_FMT_(buf, x)                                                                           \
  _Generic((x), _Bool                                                                              \
           : crs_fmt_ll, char                                                                      \
           : crs_fmt_ll, signed char                                                               \
           : crs_fmt_ll, short                                                                     \
           : crs_fmt_ll, int                                                                       \
           : crs_fmt_ll, long                                                                      \
           : crs_fmt_ll, long long                                                                 \
           : crs_fmt_ll, unsigned char                                                             \
           : crs_fmt_ull, unsigned short                                                           \
           : crs_fmt_ull, unsigned int                                                             \
           : crs_fmt_ull, unsigned long                                                            \
           : crs_fmt_ull, unsigned long long                                                       \
           : crs_fmt_ull, float                                                                    \
           : crs_fmt_dbl, double                                                                   \
           : crs_fmt_dbl, long double                                                              \
           : crs_fmt_dbl, default                                                                  \
           : crs_fmt_ptr)(buf, (x))

/* ---- test definition ---------------------------------------------------- */

#define CRS_CAT_(a, b) a##b
#define CRS_CAT(a, b) CRS_CAT_(a, b)
#define CRS_ID_(suite, name, what) CRS_CAT(CRS_CAT(crs_, suite), CRS_CAT(CRS_CAT(_, name), what))

#define Test(...) CRS_TEST_(__VA_ARGS__, .sentinel_ = 0)
#define CRS_TEST_(suite, name, ...)                                                                \
  static void CRS_ID_(suite, name, _fn)(void);                                                     \
  static struct crs_test CRS_ID_(suite, name, _t) = {                                              \
      #suite, #name, CRS_ID_(suite, name, _fn), {__VA_ARGS__}, NULL};                              \
  __attribute__((constructor)) static void CRS_ID_(suite, name, _reg)(void)                        \
  {                                                                                                \
    crs_register(&CRS_ID_(suite, name, _t));                                                       \
  }                                                                                                \
  static void CRS_ID_(suite, name, _fn)(void)

/* TestSuite(name, ...) is accepted and ignored (no suite-wide options). */
#define TestSuite(...) struct crs_unused_suite_decl

/* ---- assertions ----------------------------------------------------------
 * The message arguments are optional: "" __VA_ARGS__ turns no arguments
 * into an empty format and a format literal into itself. */

#define CRS_CHECK_(fatal, cond, expr, ...)                                                         \
  do {                                                                                             \
    if (!(cond)) CRS_FAIL_(fatal, __FILE__, __LINE__, expr, NULL, "" __VA_ARGS__);                 \
  } while (0)

#define CRS_CMP_(fatal, op, a, b, ...)                                                             \
  do {                                                                                             \
    __auto_type crs_a_ = (a);                                                                      \
    __auto_type crs_b_ = (b);                                                                      \
    if (!(crs_a_ op crs_b_)) {                                                                     \
      char crs_va_[48], crs_vb_[48], crs_v_[112];                                                  \
      const char *crs_sa_ = CRS_FMT_(crs_va_, crs_a_);                                             \
      const char *crs_sb_ = CRS_FMT_(crs_vb_, crs_b_);                                             \
      crs_v_[0] = 0;                                                                               \
      strcat(crs_v_, crs_sa_);                                                                     \
      strcat(crs_v_, " vs ");                                                                      \
      strcat(crs_v_, crs_sb_);                                                                     \
      CRS_FAIL_(fatal, __FILE__, __LINE__, #a " " #op " " #b, crs_v_, "" __VA_ARGS__);             \
    }                                                                                              \
  } while (0)

#define CRS_STR_(fatal, want_eq, a, b, ...)                                                        \
  do {                                                                                             \
    const char *crs_a_ = (a), *crs_b_ = (b);                                                       \
    int crs_eq_ = crs_a_ && crs_b_ && strcmp(crs_a_, crs_b_) == 0;                                 \
    if (crs_eq_ != (want_eq))                                                                      \
      CRS_FAIL_(fatal, __FILE__, __LINE__, want_eq ? #a " equals " #b : #a " differs from " #b,    \
                NULL, "" __VA_ARGS__);                                                             \
  } while (0)

#define cr_assert(cond, ...) CRS_CHECK_(1, cond, #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) CRS_CHECK_(1, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_null(p, ...) CRS_CHECK_(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CRS_CHECK_(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CRS_CMP_(1, ==, a, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CRS_CMP_(1, !=, a, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) CRS_CMP_(1, <, a, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) CRS_CMP_(1, <=, a, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CRS_CMP_(1, >, a, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) CRS_CMP_(1, >=, a, b, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) CRS_STR_(1, 1, a, b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) CRS_STR_(1, 0, a, b, __VA_ARGS__)
#define cr_assert_fail(...)                                                                        \
  crs_assert_fatal(__FILE__, __LINE__, "cr_assert_fail", NULL, "" __VA_ARGS__)
#define cr_fatal(...) crs_assert_fatal(__FILE__, __LINE__, "cr_fatal", NULL, "" __VA_ARGS__)
#define cr_fail(...) crs_assert_fail(0, __FILE__, __LINE__, "cr_fail", NULL, "" __VA_ARGS__)

#define cr_expect(cond, ...) CRS_CHECK_(0, cond, #cond, __VA_ARGS__)
#define cr_expect_not(cond, ...) CRS_CHECK_(0, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_expect_null(p, ...) CRS_CHECK_(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CRS_CHECK_(0, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CRS_CMP_(0, ==, a, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CRS_CMP_(0, !=, a, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) CRS_CMP_(0, <, a, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) CRS_CMP_(0, <=, a, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CRS_CMP_(0, >, a, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) CRS_CMP_(0, >=, a, b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) CRS_STR_(0, 1, a, b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) CRS_STR_(0, 0, a, b, __VA_ARGS__)

#define cr_skip_test(...) crs_skip("" __VA_ARGS__)
#define cr_log_info(...) crs_log("info", __VA_ARGS__)
#define cr_log_warn(...) crs_log("warn", __VA_ARGS__)
#define cr_log_error(...) crs_log("error", __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* OVL_CRITERION_SHIM_H */
