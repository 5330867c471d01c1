/*
 * cmd/cli_usage.c — `sluice usage`: GET /v1/usage printed as a table (or its JSON with --json).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"

#define QUERY_MAX 1024

/*
 * A time flag as unix seconds: digits are taken as they are; N followed by s, m, h or d is that
 * long ago. Returns 0, or CLI_USAGE (message printed).
 */
static int parse_time(const char *flag, const char *s, long long *out)
{
    static const struct {
        char unit;
        long long seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    char *end;
    long long v = strtoll(s, &end, 10);

    if (end != s && v >= 0 && *end == '\0') {
        *out = v;
        return CLI_OK;
    }
    for (size_t i = 0; end != s && v >= 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (end[0] == units[i].unit && end[1] == '\0' && v <= 3650LL * 86400 / units[i].seconds) {
            *out = (long long)time(NULL) - v * units[i].seconds;
            return CLI_OK;
        }
    }
    fprintf(stderr, "sluice usage: --%s wants unix seconds or a time ago (90m, 24h, 7d)\n", flag);
    return CLI_USAGE;
}

/* Appends "&name=value" (value URL-escaped) to the query. */
static void add_param(struct cli *c, char *q, size_t size, const char *name, const char *value)
{
    char *esc = curl_easy_escape(c->curl, value, 0);
    size_t len = strlen(q);

    if (esc) {
        snprintf(q + len, size - len, "%s%s=%s", len > strlen("/v1/usage") ? "&" : "?", name, esc);
    }
    curl_free(esc);
}

/* "model=gpt provider=openai" from a row's group object ("(all)" when it is empty). */
static void group_text(const cJSON *group, char *buf, size_t size)
{
    const cJSON *g;
    size_t n = 0;

    buf[0] = '\0';
    cJSON_ArrayForEach(g, group)
    {
        int w = snprintf(buf + n, size - n, "%s%s=%s", n ? " " : "", g->string,
                         cJSON_IsString(g) ? g->valuestring : "?");
        if (w < 0 || (size_t)w >= size - n) {
            break;
        }
        n += (size_t)w;
    }
    if (n == 0) {
        snprintf(buf, size, "(all)");
    }
}

static void print_table(const cJSON *u)
{
    const cJSON *row, *data = cJSON_GetObjectItemCaseSensitive(u, "data");
    double sum[6] = {0};
    char start[32], group[256];

    printf("%-16s  %-32s %9s %9s %7s %11s %11s %11s %7s %7s\n", "START (UTC)", "GROUP", "REQUESTS",
           "COMPLETED", "FAILED", "IN TOKENS", "OUT TOKENS", "COST USD", "P50 MS", "P95 MS");
    cJSON_ArrayForEach(row, data)
    {
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(row, "latency_ms");
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(row, "cost");
        time_t t = (time_t)cli_num(row, "start", 0);
        struct tm tm;
        double v[6] = {cli_num(row, "requests", 0),      cli_num(row, "completed", 0),
                       cli_num(row, "failed", 0),        cli_num(row, "input_tokens", 0),
                       cli_num(row, "output_tokens", 0), cli_num(cost, "amount", 0)};
        strftime(start, sizeof(start), "%Y-%m-%d %H:%M", gmtime_r(&t, &tm));
        group_text(cJSON_GetObjectItemCaseSensitive(row, "group"), group, sizeof(group));
        printf("%-16s  %-32s %9.0f %9.0f %7.0f %11.0f %11.0f %11.6f %7.0f %7.0f\n", start, group,
               v[0], v[1], v[2], v[3], v[4], v[5], cli_num(lat, "p50", 0), cli_num(lat, "p95", 0));
        for (int i = 0; i < 6; i++) {
            sum[i] += v[i];
        }
    }
    snprintf(group, sizeof(group), "(%d row%s)", cJSON_GetArraySize(data),
             cJSON_GetArraySize(data) == 1 ? "" : "s");
    printf("%-16s  %-32s %9.0f %9.0f %7.0f %11.0f %11.0f %11.6f\n", "TOTAL", group, sum[0], sum[1],
           sum[2], sum[3], sum[4], sum[5]);
}

int cli_cmd_usage(struct cli *c, int argc, char **argv)
{
    const char *from = NULL, *to = NULL, *bucket = NULL, *group_by = NULL, *tenant = NULL;
    const struct cli_opt opts[] = {
        {"from", CLI_OPT_STR, &from},     {"to", CLI_OPT_STR, &to},
        {"bucket", CLI_OPT_STR, &bucket}, {"group-by", CLI_OPT_STR, &group_by},
        {"tenant", CLI_OPT_STR, &tenant},
    };
    const char *pos[1];
    char q[QUERY_MAX] = "/v1/usage", num[32];
    long long t;
    size_t npos;
    cJSON *u = NULL;
    int rc = cli_parse(c, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 0, &npos);

    if (rc == CLI_OK && bucket && strcmp(bucket, "hour") != 0 && strcmp(bucket, "day") != 0) {
        fprintf(stderr, "sluice usage: --bucket is hour or day\n");
        rc = CLI_USAGE;
    }
    if (rc == CLI_OK && from && (rc = parse_time("from", from, &t)) == CLI_OK) {
        snprintf(num, sizeof(num), "%lld", t);
        add_param(c, q, sizeof(q), "from", num);
    }
    if (rc == CLI_OK && to && (rc = parse_time("to", to, &t)) == CLI_OK) {
        snprintf(num, sizeof(num), "%lld", t);
        add_param(c, q, sizeof(q), "to", num);
    }
    if (rc != CLI_OK) {
        return rc;
    }
    if (bucket) {
        add_param(c, q, sizeof(q), "bucket", bucket);
    }
    if (group_by) {
        add_param(c, q, sizeof(q), "group_by", group_by);
    }
    if (tenant) {
        add_param(c, q, sizeof(q), "tenant", tenant);
    }
    if ((rc = cli_call_json(c, "GET", q, NULL, &u)) == CLI_OK) {
        if (c->json) {
            cli_print_json(c, u);
        } else {
            print_table(u);
        }
    }
    cJSON_Delete(u);
    return rc;
}
