/* SPDX-License-Identifier: ISC */
/* make bench's table and results.json (report.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"

#define MAX_ROWS 64

typedef struct row {
    const char *name, *unit, *peer, *goal_op;
    double      value, peer_value, goal;
} row;

static row rows[MAX_ROWS];
static int nrows;

void report_row(const char *name, double value, const char *unit, const char *peer,
                double peer_value, const char *goal_op, double goal)
{
    if (nrows == MAX_ROWS) {
        fprintf(stderr, "bench: more than %d rows: raise MAX_ROWS\n", MAX_ROWS);
        exit(1);
    }
    rows[nrows++] = (row){ name, unit, peer, goal_op, value, peer_value, goal };
}

/* What the goal is compared with: the ratio to the peer, or the value with no peer. */
static double ratio(const row *r)
{
    return r->peer != NULL ? r->value / r->peer_value : r->value;
}

/* 1 met, 0 not met, -1 no goal. */
static int met(const row *r)
{
    if (r->goal_op == NULL)
        return -1;
    return r->goal_op[0] == '<' ? ratio(r) <= r->goal : ratio(r) >= r->goal;
}

static const char *met_str(const row *r)
{
    static const char *s[] = { "-", "NOT met", "met" };

    return s[met(r) + 1];
}

/* "<= 0.6x" on a ratio to the peer, "<= 50 ns" on the value when there is no peer. */
static void goal_str(const row *r, char *out, size_t n)
{
    if (r->peer != NULL)
        snprintf(out, n, "%s %gx", r->goal_op, r->goal);
    else
        snprintf(out, n, "%s %g %s", r->goal_op, r->goal, r->unit);
}

static void json_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, "\"%s\": ", key);
    if (v == NULL)
        fputs("null", f);
    else
        fprintf(f, "\"%s\"", v); /* the names are this program's literals: no escaping */
}

static void json_num(FILE *f, const char *key, double v, bool have)
{
    if (have)
        fprintf(f, "\"%s\": %.6g", key, v);
    else
        fprintf(f, "\"%s\": null", key);
}

static bool write_json(const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return false;
    fputs("[\n", f);
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        char goal[32] = "";

        if (r->goal_op != NULL)
            goal_str(r, goal, sizeof goal);
        fputs("  {", f);
        json_str(f, "name", r->name);
        fputs(", ", f);
        json_num(f, "value", r->value, true);
        fputs(", ", f);
        json_str(f, "unit", r->unit);
        fputs(", ", f);
        json_str(f, "peer", r->peer);
        fputs(", ", f);
        json_num(f, "peer_value", r->peer_value, r->peer != NULL);
        fputs(", ", f);
        json_num(f, "ratio", ratio(r), r->peer != NULL);
        fputs(", ", f);
        json_str(f, "goal", r->goal_op != NULL ? goal : NULL);
        fprintf(f, ", \"met\": %s}%s\n", met(r) < 0 ? "null" : met(r) ? "true" : "false",
                i + 1 < nrows ? "," : "");
    }
    fputs("]\n", f);
    return fclose(f) == 0;
}

bool report_end(const char *title, const char *json_path)
{
    printf("%s\n\n%-40s %10s %-6s %-28s %10s %8s %10s  %s\n", title, "measure", "securemem", "unit",
           "peer (same run)", "peer", "ratio", "goal", "met");
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        char goal[32] = "-", peer_v[32] = "-", rat[32] = "-";

        if (r->goal_op != NULL)
            goal_str(r, goal, sizeof goal);
        if (r->peer != NULL) {
            snprintf(peer_v, sizeof peer_v, "%.4g", r->peer_value);
            snprintf(rat, sizeof rat, "%.3fx", ratio(r));
        }
        printf("%-40s %10.4g %-6s %-28s %10s %8s %10s  %s\n", r->name, r->value, r->unit,
               r->peer != NULL ? r->peer : "-", peer_v, rat, goal, met_str(r));
    }
    if (!write_json(json_path)) {
        fprintf(stderr, "bench: cannot write %s: %s\n", json_path, strerror(errno));
        return false;
    }
    printf("\n(the same rows: %s)\n", json_path);
    return true;
}

double bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return v[n / 2];
}
