/* Docker's rules for restarting a container and for judging its health checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

int mon_restart_parse(const char *s, struct mon_restart *ret, struct ks_error **err)
{
    static const char *const names[] = {
        [MON_RESTART_NO] = "no",
        [MON_RESTART_ALWAYS] = "always",
        [MON_RESTART_UNLESS_STOPPED] = "unless-stopped",
        [MON_RESTART_ON_FAILURE] = "on-failure",
    };
    const char *colon = strchr(s, ':');
    size_t nlen = colon ? (size_t)(colon - s) : strlen(s);
    for (size_t i = 0; i < KS_ELEMENTSOF(names); i++) {
        if (strlen(names[i]) != nlen || strncmp(s, names[i], nlen) != 0)
            continue;
        *ret = (struct mon_restart){.kind = (enum mon_restart_kind)i};
        if (colon == NULL)
            return 0;
        /* Only on-failure takes a count, as in Docker. */
        if (i != MON_RESTART_ON_FAILURE)
            return ks_error_msg(err, "restart policy `%s`: only on-failure takes a count", s);
        char *end;
        errno = 0;
        unsigned long n = strtoul(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || errno != 0 || n > 1000000 || colon[1] == '-')
            return ks_error_msg(err, "restart policy `%s`: invalid count", s);
        ret->max = (unsigned)n;
        return 0;
    }
    return ks_error_msg(err, "invalid restart policy `%s`", s);
}

bool mon_restart_should(const struct mon_restart *p, int exit_code, unsigned restart_count)
{
    switch (p->kind) {
    case MON_RESTART_ALWAYS:
    case MON_RESTART_UNLESS_STOPPED:
        return true;
    case MON_RESTART_ON_FAILURE:
        return exit_code != 0 && (p->max == 0 || restart_count < p->max);
    case MON_RESTART_NO:
        break;
    }
    return false;
}

uint64_t mon_backoff_next(uint64_t prev_ms, int64_t ran_ns)
{
    if (prev_ms == 0 || ran_ns >= MON_BACKOFF_RESET_NS)
        return MON_BACKOFF_FIRST_MS;
    uint64_t next = prev_ms * 2;
    return next > MON_BACKOFF_MAX_MS ? MON_BACKOFF_MAX_MS : next;
}

const char *mon_health_status_name(enum mon_health_status s)
{
    static const char *const names[] = {
        [MON_HEALTH_STARTING] = "starting",
        [MON_HEALTH_HEALTHY] = "healthy",
        [MON_HEALTH_UNHEALTHY] = "unhealthy",
    };
    return (size_t)s < KS_ELEMENTSOF(names) ? names[s] : "unhealthy";
}

void mon_health_reset(struct mon_health *h)
{
    h->status = MON_HEALTH_STARTING;
    h->failing_streak = 0;
}

void mon_health_record(struct mon_health *h, struct mon_health_result *r, bool in_start_period,
                       unsigned retries)
{
    if (r->exit_code == 0) {
        h->failing_streak = 0;
        h->status = MON_HEALTH_HEALTHY;
    } else if (!(h->status == MON_HEALTH_STARTING && in_start_period)) {
        h->failing_streak++;
        if (h->failing_streak >= retries)
            h->status = MON_HEALTH_UNHEALTHY;
    }
    if (h->n_log == MON_HEALTH_LOG_MAX) {
        free(h->log[0].output);
        memmove(&h->log[0], &h->log[1], (MON_HEALTH_LOG_MAX - 1) * sizeof(h->log[0]));
        h->n_log--;
    }
    h->log[h->n_log++] = *r;
    r->output = NULL;
}

void mon_health_clear(struct mon_health *h)
{
    for (size_t i = 0; i < h->n_log; i++)
        free(h->log[i].output);
    *h = (struct mon_health){0};
}

/* Go's Duration.String for the values a health check timeout takes. */
const char *mon_format_duration(int64_t ns, char *buf, size_t len)
{
    if (ns <= 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    if (ns < 1000) {
        snprintf(buf, len, "%lldns", (long long)ns);
        return buf;
    }
    if (ns < 1000000000) {
        /* µs or ms with the fraction's trailing zeros dropped. */
        int64_t unit = ns < 1000000 ? 1000 : 1000000;
        char frac[16];
        snprintf(frac, sizeof(frac), "%0*lld", unit == 1000 ? 3 : 6, (long long)(ns % unit));
        for (size_t i = strlen(frac); i > 0 && frac[i - 1] == '0'; i--)
            frac[i - 1] = '\0';
        snprintf(buf, len, "%lld%s%s%s", (long long)(ns / unit), frac[0] ? "." : "", frac,
                 unit == 1000 ? "µs" : "ms");
        return buf;
    }
    int64_t h = ns / 3600000000000LL, m = ns / 60000000000LL % 60, s = ns / 1000000000 % 60;
    char frac[16];
    snprintf(frac, sizeof(frac), "%09lld", (long long)(ns % 1000000000));
    for (size_t i = strlen(frac); i > 0 && frac[i - 1] == '0'; i--)
        frac[i - 1] = '\0';
    char hm[48] = "";
    if (h > 0)
        snprintf(hm, sizeof(hm), "%lldh%lldm", (long long)h, (long long)m);
    else if (m > 0)
        snprintf(hm, sizeof(hm), "%lldm", (long long)m);
    snprintf(buf, len, "%s%lld%s%ss", hm, (long long)s, frac[0] ? "." : "", frac);
    return buf;
}
