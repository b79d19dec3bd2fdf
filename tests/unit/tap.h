/* A minimal TAP producer for the unit test programs. */
#pragma once

#include <stdbool.h>

void tap_plan_auto(void);
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the plan ("1..N") and returns the exit status: 0 when every test passed. */
int tap_done(void);

#define TAP_EQ_INT(a, b, ...)                                                                      \
    do {                                                                                           \
        long long _a = (a), _b = (b);                                                              \
        if (!tap_ok(_a == _b, __VA_ARGS__))                                                        \
            tap_diag("  got %lld, expected %lld", _a, _b);                                         \
    } while (0)

#define TAP_EQ_STR(a, b, ...)                                                                      \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!tap_ok(_a && _b && strcmp(_a, _b) == 0, __VA_ARGS__))                                 \
            tap_diag("  got \"%s\", expected \"%s\"", _a ? _a : "(null)", _b ? _b : "(null)");     \
    } while (0)
