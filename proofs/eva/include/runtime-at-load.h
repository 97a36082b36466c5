/* SPDX-License-Identifier: ISC */
/*
 * Read by Frama-C before src/runtime/runtime.c in the runtime analysis only (eva.sh,
 * -cpp-extra-args-per-file), never by a compiler. Eva runs no constructor, and the
 * runtime's (fork_handlers_at_load) is static: this names it for the driver, which
 * calls it first, as the loader would, without changing the library's linkage.
 */
static void fork_handlers_at_load(void);
void eva_runtime_at_load(void);

void eva_runtime_at_load(void)
{
    fork_handlers_at_load();
}
