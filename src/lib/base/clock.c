/* Time stamps in RFC 3339, the form OCI documents, Docker's JSON and runc's logs use. */
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *ks_rfc3339_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09ldZ", base, ts.tv_nsec);
    return buf;
}

static bool parse_digits(const char **s, size_t count, unsigned *ret)
{
    unsigned n = 0;
    for (size_t i = 0; i < count; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        n = n * 10 + (unsigned)(c - '0');
    }
    *s += count;
    *ret = n;
    return true;
}

static bool is_leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* RFC 3339 date-time ("2024-01-31T12:00:00.123456789Z", "...+02:00"), the form Go writes. */
bool ks_rfc3339_parse_strict(const char *s, int64_t *ret_unix)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned year, mon, day, hour, min, sec, oh = 0, om = 0;
    int sign = 0;
    if (!parse_digits(&s, 4, &year) || *s++ != '-' || !parse_digits(&s, 2, &mon) || *s++ != '-' ||
        !parse_digits(&s, 2, &day) || (*s != 'T' && *s != 't'))
        return false;
    s++;
    if (!parse_digits(&s, 2, &hour) || *s++ != ':' || !parse_digits(&s, 2, &min) || *s++ != ':' ||
        !parse_digits(&s, 2, &sec))
        return false;
    if (*s == '.') {
        size_t n = strspn(++s, "0123456789");
        if (n == 0 || n > 9)
            return false;
        s += n;
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
        if (!parse_digits(&s, 2, &oh) || *s++ != ':' || !parse_digits(&s, 2, &om) || oh > 23 ||
            om > 59)
            return false;
    } else {
        return false;
    }
    if (*s != '\0' || mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 60)
        return false;
    if (day > mdays[mon - 1] + (mon == 2 && is_leap(year)))
        return false;
    int64_t t = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
    *ret_unix = t - sign * (int64_t)(oh * 3600 + om * 60);
    return true;
}

int64_t ks_rfc3339_parse(const char *s)
{
    int64_t t;
    return s && ks_rfc3339_parse_strict(s, &t) ? t : -1;
}
