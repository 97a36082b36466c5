/* SPDX-License-Identifier: ISC */
/*
 * make bench's one table (issue 14 §6). Every measure adds one row: securemem's value,
 * the peer measured in the same run and its value, and the goal on the ratio between
 * them. report_end prints the table and writes the same rows to a JSON file. Nothing
 * here asserts: a goal that is not met is printed as such, and the exit status stays 0.
 */
#ifndef SM_BENCH_REPORT_H
#define SM_BENCH_REPORT_H

#include <stdbool.h>

/*
 * One row. peer NULL: no peer, and the goal is on value itself. goal_op "<=" or ">="
 * (lower or higher is better), goal 0 with goal_op NULL: shown for reference only.
 */
void report_row(const char *name, double value, const char *unit, const char *peer,
                double peer_value, const char *goal_op, double goal);
/* Print the table under title and write every row to json_path; false if it could not. */
bool report_end(const char *title, const char *json_path);

/* CLOCK_MONOTONIC in ns, and the median of n values (sorts them). */
double bench_now_ns(void);
double bench_median(double *v, int n);

/* The measures in their own files, each adding its rows. */
void bench_crypto(int rounds);     /* enclave_stream.c */
void bench_contention(int rounds); /* contention.c */

#endif
