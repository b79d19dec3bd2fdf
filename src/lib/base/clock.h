/* RFC 3339 time stamps. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KS_RFC3339_LEN 40

/* The current time, UTC with nanoseconds ("2026-11-27T17:01:05.123456789Z"), written into buf
 * (KS_RFC3339_LEN bytes suffice); returns buf. */
const char *ks_rfc3339_now(char *buf, size_t len);

/* Parses an RFC 3339 date-time ("...Z" or "...+02:00", optional fraction of up to nine digits)
 * checking the calendar; the seconds since the epoch go to *ret_unix. */
bool ks_rfc3339_parse_strict(const char *s, int64_t *ret_unix);

/* The same, -1 for NULL or an invalid time. */
int64_t ks_rfc3339_parse(const char *s);
