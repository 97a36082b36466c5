/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for the runtime (src/runtime/runtime.c) and the canary generator
 * (src/memory/rng.c), proofs/README.md, "Eva": the load-time constructor, sm_init's
 * refusals (bad input, the secretmem probe, each OS call of the key page, the refused
 * core-dump switch and its rollback), the init that then succeeds, a second sm_init,
 * the registrations that only the coffer and the compact factory make (stand-ins here:
 * coffer.c and compact.c stay out of the run), the purge, sm_stats, and a fork in the
 * parent and in the child, whose key page is locked again before a random fill (or,
 * under SM_LOCK_BEST_EFFORT, left unlocked once its lock is refused).
 * Determinate, as the buffers driver (eva_os_fail: only the nth fallible call fails).
 *
 * The process has one life: once sm_init succeeds, nothing can take the runtime back,
 * so every refusal comes first, each checked to leave nothing initialised (nothing
 * mapped, counted or registered as the canary source), and to be retried by the next.
 * Each check of the library's answer is a Frama_C_show_each_* call on the path where
 * it would be wrong: eva.sh fails when Eva prints one.
 */
#include <__fc_builtin.h>

#include "eva-driver.h"

/* The runtime's constructor, as the loader runs it (include/runtime-at-load.h). */
void eva_runtime_at_load(void);

/*
 * Nothing initialised: no page mapped or counted, and no canary source, so that a
 * region asked for without a seed is refused before any OS call.
 */
static void nothing_left(unsigned k)
{
    smi_region r;

    if (eva_os_mapped() != 0 || atomic_load(&smi_stat_allocations) != 0 ||
        atomic_load(&smi_stat_locked) != 0 || atomic_load(&smi_stat_unlocked) != 0 ||
        smi_region_alloc(1, NULL, &r) != SM_E_STATE)
        Frama_C_show_each_refused_init_left_something(k);
}

/*
 * sm_init under a plan that fails its kth OS call (0: none): refused with want (or
 * with also, the other status the call may map to), the plan's failure met, nothing
 * left.
 */
static void refused(const sm_config *cfg, unsigned k, sm_status want, sm_status also)
{
    sm_status st;

    eva_os_fail(k);
    st = sm_init(cfg);
    if ((st != want && st != also) || eva_os_fail_pending())
        Frama_C_show_each_refusal_wrong(k, st);
    eva_os_fail(0);
    nothing_left(k);
}

/*
 * Every refusal, each retried by the next: bad input; each OS call of the key page
 * (its seed, mapping, protection, lock, the two advices, the key) and the core-dump
 * switch after it, whose rollback unmaps the key page and takes the canary source back;
 * the secretmem probe's answers (no support under REQUIRED, an error under PREFERRED;
 * no support under PREFERRED goes on without it, to the refused switch); and the first
 * call that needs the runtime, which initialises it with the defaults (refused too).
 */
static const sm_config dumps = { .lock_policy = SM_LOCK_REQUIRED,
                                 .backing = SM_BACKING_ANON,
                                 .disable_core_dumps = true };
static const sm_config preferred = { .lock_policy = SM_LOCK_REQUIRED,
                                     .backing = SM_BACKING_SECRETMEM_PREFERRED,
                                     .disable_core_dumps = true };
static const sm_config required = { .lock_policy = SM_LOCK_REQUIRED,
                                    .backing = SM_BACKING_SECRETMEM_REQUIRED };

static void refusals(void)
{
    sm_config bad_lock = { .lock_policy = (sm_lock_policy)(SM_LOCK_BEST_EFFORT + 1) },
              bad_backing = { .backing = (sm_backing)(SM_BACKING_SECRETMEM_REQUIRED + 1) };
    sm_stats s = { .buffers_live = 7 };

    refused(&bad_lock, 0, SM_E_INVAL, SM_E_INVAL);
    refused(&bad_backing, 0, SM_E_INVAL, SM_E_INVAL);
    refused(&dumps, 1, SM_E_RANDOM, SM_E_RANDOM);
    refused(&dumps, 2, SM_E_NOMEM, SM_E_NOMEM);
    /* a refused mprotect on a fresh mapping is SM_E_NOMEM when the OS said ENOMEM */
    refused(&dumps, 3, SM_E_PROT, SM_E_NOMEM);
    refused(&dumps, 4, SM_E_LOCK, SM_E_LOCK);
    refused(&dumps, 5, SM_E_SYS, SM_E_SYS);
    refused(&dumps, 6, SM_E_SYS, SM_E_SYS);
    refused(&dumps, 7, SM_E_RANDOM, SM_E_RANDOM);
    refused(&dumps, 8, SM_E_SYS, SM_E_SYS); /* the core-dump switch: rolled back */
    eva_os_secretmem(SM_E_UNSUPPORTED);
    refused(&required, 0, SM_E_UNSUPPORTED, SM_E_UNSUPPORTED);
    refused(&preferred, 8, SM_E_SYS, SM_E_SYS);
    eva_os_secretmem(SM_E_NOMEM);
    refused(&preferred, 0, SM_E_NOMEM, SM_E_NOMEM);
    eva_os_secretmem(SM_OK);
    eva_os_fail(1);
    if (sm_stats_get(&s) != SM_E_RANDOM || s.buffers_live != 7)
        Frama_C_show_each_refused_stats_answered(0);
    eva_os_fail(0);
    nothing_left(0);
}

/*
 * The init that succeeds, on secretmem, then a second sm_init: the same config is
 * accepted, a different one (each field in turn, the defaults) refused with SM_E_STATE,
 * bad input still SM_E_INVAL; the config in force stays the first.
 */
static void init(void)
{
    sm_config other_lock = preferred, other_backing = preferred, other_dumps = preferred,
              bad_lock = { .lock_policy = (sm_lock_policy)(SM_LOCK_BEST_EFFORT + 1) };
    sm_stats s;

    other_lock.lock_policy = SM_LOCK_BEST_EFFORT;
    other_backing.backing = SM_BACKING_ANON;
    other_dumps.disable_core_dumps = false;
    MUST(sm_init(&preferred));
    MUST(sm_stats_get(&s));
    if (!s.secretmem || s.allocations_total != 1 || s.bytes_locked == 0 ||
        s.bytes_unlocked != 0)
        Frama_C_show_each_init_wrong(0);
    if (sm_init(&preferred) != SM_OK || sm_init(&other_lock) != SM_E_STATE ||
        sm_init(&other_backing) != SM_E_STATE || sm_init(&other_dumps) != SM_E_STATE ||
        sm_init(NULL) != SM_E_STATE || sm_init(&bad_lock) != SM_E_INVAL ||
        smi_config_get()->backing != SM_BACKING_SECRETMEM_PREFERRED ||
        smi_config_get()->lock_policy != SM_LOCK_REQUIRED)
        Frama_C_show_each_second_init_wrong(0);
    if (sm_stats_get(NULL) != SM_E_INVAL)
        Frama_C_show_each_stats_null_accepted(0);
}

/*
 * Stand-ins for the tables that the coffer (its fork handlers, its key's purge) and the
 * compact factory (the objects outside the registry) register. Each handler writes its
 * letter to the journal, so that the driver checks which ran, and in which order.
 */
static char journal[8];
static unsigned written;
static bool outside_intact, key_ending;
static unsigned key_purges;

static void note(char c)
{
    if (written < sizeof journal)
        journal[written++] = c;
}

static void coffer_before(void)
{
    note('C');
}

static void coffer_parent(void)
{
    note('c');
}

static void coffer_child(void)
{
    note('k');
}

static const smi_fork_ops coffer_ops = { coffer_before, coffer_parent, coffer_child };

static bool outside_purge(bool ending)
{
    (void)ending;
    note('P');
    return outside_intact;
}

static void outside_before(void)
{
    note('O');
}

static void outside_parent(void)
{
    note('o');
}

static void outside_child(void)
{
    note('x');
}

static uint64_t outside_live(void)
{
    return 5;
}

static const smi_outside_ops outside_ops = { outside_purge, outside_before, outside_parent,
                                             outside_child, outside_live };

static void key_purge(bool ending)
{
    key_purges++;
    key_ending = ending;
}

/* The journal holds exactly the n letters of want. */
static bool journal_is(const char *want, unsigned n)
{
    bool same = written == n;

    for (unsigned i = 0; same && i < n; i++)
        same = journal[i] == want[i];
    written = 0;
    return same;
}

/*
 * A fork and a purge before anything is registered (an intact purge), then after: the
 * coffer's handlers outermost (its locks first, released last), the outside objects'
 * innermost; the child forgets the outside objects before the coffer's handler runs.
 * The purge reaches the outside objects (a damaged canary among them makes it report
 * so) and the key's purge with the caller's ending, and sm_stats counts the outside
 * secrets.
 */
static void registrations(void)
{
    sm_stats s;

    eva_os_fork(false);
    if (!smi_purge_all(false) || written != 0 || key_purges != 0)
        Frama_C_show_each_unregistered_handler_ran(written);
    smi_runtime_coffer_fork(&coffer_ops);
    smi_runtime_key_purge(key_purge);
    smi_runtime_outside(&outside_ops);
    smi_runtime_outside(&outside_ops); /* every compact make: the table in place already */
    eva_os_fork(false);
    if (!journal_is("COoc", 4))
        Frama_C_show_each_parent_handlers_wrong(0);
    MUST(sm_stats_get(&s));
    if (s.secrets_live != 5)
        Frama_C_show_each_outside_not_counted(s.secrets_live);
    outside_intact = false;
    if (smi_purge_all(false) || !journal_is("P", 1) || key_purges != 1 || key_ending)
        Frama_C_show_each_purge_wrong(0);
    outside_intact = true;
    if (!smi_purge_all(true) || !journal_is("P", 1) || key_purges != 2 || !key_ending)
        Frama_C_show_each_purge_wrong(1);
}

/*
 * The forked child: the handlers in order, then the key page, which fork left unlocked:
 * counted so, and locked again by the next random fill, which the lock's refusal
 * (SM_LOCK_REQUIRED) refuses whole, and which then draws a new key. A key that a purge
 * forgot and that the OS will not redraw gives no random bytes.
 */
static void child(void)
{
    uint8_t out[32], canary[SMI_CANARY_SEED];
    sm_stats s;

    eva_os_fork(true);
    if (!journal_is("COxk", 4))
        Frama_C_show_each_child_handlers_wrong(0);
    MUST(sm_stats_get(&s));
    if (s.bytes_locked != 0 || s.bytes_unlocked == 0)
        Frama_C_show_each_unlocked_key_page_counted_locked(0);
    eva_os_fail(1);
    if (smi_rng_fill(out, sizeof out) != SM_E_LOCK)
        Frama_C_show_each_fill_from_unlocked_key(0);
    eva_os_fail(0);
    MUST(smi_rng_fill(out, sizeof out));
    MUST(sm_stats_get(&s));
    if (s.bytes_locked == 0 || s.bytes_unlocked != 0)
        Frama_C_show_each_relocked_key_page_counted_unlocked(0);
    smi_rng_canary(canary);
    smi_rng_forget_key();
    eva_os_fail(1);
    if (smi_rng_fill(out, sizeof out) != SM_E_RANDOM)
        Frama_C_show_each_fill_without_key(0);
    eva_os_fail(0);
}

/*
 * A child's key page whose lock is refused under SM_LOCK_BEST_EFFORT (the driver sets
 * that config in force, as an sm_init of it would have, the process having one life):
 * the refusal is final, the page goes on unlocked and counted so, and the fill is
 * served; no later fill tries the lock again (it makes no OS call at all).
 */
static void child_best_effort(void)
{
    static const sm_config best_effort = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                           .backing = SM_BACKING_SECRETMEM_PREFERRED,
                                           .disable_core_dumps = true };
    uint8_t out[32];
    sm_stats s;

    smi_config_set(&best_effort, true);
    eva_os_fork(true);
    if (!journal_is("COxk", 4))
        Frama_C_show_each_child_handlers_wrong(1);
    eva_os_fail(1);
    MUST(smi_rng_fill(out, sizeof out));
    if (eva_os_fail_pending())
        Frama_C_show_each_relock_not_tried(0);
    eva_os_fail(1);
    MUST(smi_rng_fill(out, sizeof out));
    if (!eva_os_fail_pending())
        Frama_C_show_each_refused_relock_tried_again(0);
    eva_os_fail(0);
    MUST(sm_stats_get(&s));
    if (s.bytes_locked != 0 || s.bytes_unlocked == 0)
        Frama_C_show_each_unlocked_key_page_counted_locked(1);
}

int main(void)
{
    eva_pthread_foreign(0);
    eva_os_fail(0);
    eva_runtime_at_load();
    if (eva_os_atfork_calls() != 1)
        Frama_C_show_each_handlers_not_registered_at_load(0);
    refusals();
    init();
    registrations();
    child();
    child_best_effort();
    /* every sm_init above, refused or not, found the handlers there */
    if (eva_os_atfork_calls() != 1)
        Frama_C_show_each_handlers_registered_again(eva_os_atfork_calls());
    return 0;
}
