/* SPDX-License-Identifier: ISC */
/*
 * The runtime: one configuration per process, set by sm_init or, failing that, by the
 * first call that needs it (SM-REQ-001). After initialisation the configuration is
 * read without a lock: "ready" is published with release order after it is written.
 */
#include "inner.h"

static sm_os_mutex init_lock = SM_OS_MUTEX_INIT;
static atomic_bool ready;
static sm_os_once_flag atfork_once = SM_OS_ONCE_INIT;
static atomic_bool atfork_ok;
/*
 * The enclave key's purge (coffer.c), registered by the coffer before it makes its
 * first key: the coffer sits above the runtime (it calls smi_runtime_ready), so the
 * runtime reaches it through this pointer rather than by name (spec/layers.tsv).
 */
static void (*_Atomic key_purge)(bool ending);
/* The objects outside the registry (smi_runtime_outside), and the table a fork locked. */
static const smi_outside_ops *_Atomic outside;
static const smi_outside_ops *outside_forking;
/* The coffer's fork handlers (smi_runtime_coffer_fork), and those a fork's prepare ran. */
static const smi_fork_ops *_Atomic coffer_fork;
static const smi_fork_ops *coffer_forking;

SMI_VG_AT_START(vg_runtime)
{
    SMI_VG_ATOMIC(&ready, sizeof ready);
    SMI_VG_ATOMIC(&atfork_ok, sizeof atfork_ok);
    SMI_VG_ATOMIC(&key_purge, sizeof key_purge);
    SMI_VG_ATOMIC(&outside, sizeof outside);
    SMI_VG_ATOMIC(&coffer_fork, sizeof coffer_fork);
}

static bool config_equal(const sm_config *a, const sm_config *b)
{
    return a->lock_policy == b->lock_policy && a->backing == b->backing &&
           a->disable_core_dumps == b->disable_core_dumps;
}

/*
 * Whether memfd_secret works here: one probe file, closed at once. A refusal for lack
 * of support means "no" (SM-REQ-026); other errors fail init. The probe maps nothing,
 * so RLIMIT_MEMLOCK refusals only show per region, where PREFERRED falls back.
 */
static sm_status probe_secretmem(bool *works)
{
    int fd;
    sm_status st = sm_os_secretmem_create(sm_os_page_size(), &fd);

    *works = st == SM_OK;
    if (st == SM_OK)
        (void)sm_os_close(fd);
    return st == SM_E_UNSUPPORTED ? SM_OK : st;
}

/*
 * The fork handlers (spec/runtime.md, "Fork"). init_lock and the registry lock are both
 * taken before the fork, so that the child never inherits either locked by a thread it
 * does not have (issue 18 §1: a child forked while another thread was in sm_init waited
 * for it for ever). The coffer's handlers run inside these (smi_runtime_coffer_fork),
 * so a fork takes the coffer's locks, then init_lock, then the registry lock: the order
 * in which the library's own paths nest them, which never hold init_lock or the
 * registry lock while they take a coffer lock.
 */
static void before_fork(void)
{
    /* First: the coffer's paths take init_lock (smi_runtime_ready) inside its locks. */
    coffer_forking = atomic_load(&coffer_fork);
    if (coffer_forking != NULL)
        coffer_forking->before_fork();
    sm_os_mutex_lock(&init_lock);
    smi_registry_before_fork();
    /* Last: no outside path takes the others inside its own locks. */
    outside_forking = atomic_load(&outside);
    if (outside_forking != NULL)
        outside_forking->before_fork();
}

static void fork_parent(void)
{
    if (outside_forking != NULL)
        outside_forking->fork_parent();
    smi_registry_fork_parent();
    sm_os_mutex_unlock(&init_lock);
    if (coffer_forking != NULL)
        coffer_forking->fork_parent();
}

/*
 * The forked child: both locks let go by the thread that took them (the child's one
 * thread is the one that forked), the registry's slots, the spare mappings, the
 * counters set afresh once every pre-fork object is forgotten, then the canary
 * generator's key and the enclave key, which count again the regions they keep.
 */
static void after_fork(void)
{
    const smi_outside_ops *p = atomic_load(&outside);

    sm_os_mutex_unlock(&init_lock);
    smi_registry_after_fork();
    /*
     * The table as it is now, not as the prepare handler saw it: a table registered by
     * another thread during the fork may have made its first slab, and the child must
     * forget it too (its handler knows whether its prepare ran, compact.c).
     */
    if (p != NULL)
        p->after_fork();
    smi_pool_after_fork();
    smi_spare_after_fork();
    smi_stats_after_fork();
    smi_rng_after_fork();
    /*
     * Last, and the handlers set now: a coffer that set them while this fork ran its
     * prepare handlers (after before_fork read none) may have taken its locks since, in
     * a thread the child lacks. Its child handler releases what its prepare took, or
     * makes the locks afresh when that prepare did not run.
     */
    {
        const smi_fork_ops *c = atomic_load(&coffer_fork);

        if (c != NULL)
            c->after_fork();
    }
}

/*
 * Registered before any lock of the library is first taken, or a fork could catch one
 * held before the handlers exist: at load (fork_handlers_at_load), not at the first
 * call. A first call made while another thread's fork was running its prepare
 * handlers registered them too late for that fork (glibc 2.34 and later run, for a fork
 * under way, none of the handlers registered meanwhile, the child's included): the
 * child inherited whatever that call held (init_lock, the canary key's reseed_lock,
 * the registry's lock, an object's) and kept the parent's objects live
 * (runtime/first_call_during_a_fork_runs_the_fork_handlers). sm_os_call_once for the
 * reason coffer.c gives (glibc restarts a once-routine that a fork interrupted), and so
 * that a call made before the constructor ran (another constructor of the same program,
 * in link order) still registers them first. It fails only when libc cannot grow its
 * handler list: then no call can be made fork-safe, and every sm_init of the process
 * gives SM_E_NOMEM (a constructor has no caller to tell).
 */
static void atfork_register(void)
{
    /* A panic purges through the runtime, whichever layer it comes from (fatal.c). */
    smi_fatal_purge_hook(smi_purge_all);
    atomic_store(&atfork_ok, sm_os_atfork(before_fork, fork_parent, after_fork) == SM_OK);
}

sm_status smi_runtime_fork_ready(void)
{
    sm_os_call_once(&atfork_once, atfork_register);
    return atomic_load(&atfork_ok) ? SM_OK : SM_E_NOMEM;
}

/*
 * Before main, or inside the dlopen that loads the library: before any call of the
 * library, and so before any of its locks can be held. Every compiler of the build
 * matrix has the attribute (GCC, Clang, Zig, MinGW); on Windows sm_os_atfork does
 * nothing, there being no fork.
 */
__attribute__((constructor)) static void fork_handlers_at_load(void)
{
    (void)smi_runtime_fork_ready();
}

void smi_runtime_coffer_fork(const smi_fork_ops *ops)
{
    atomic_store(&coffer_fork, ops);
}

/* Every step that can fail comes before the ones that cannot be undone. */
static sm_status init_locked(const sm_config *cfg)
{
    bool works = false;
    sm_status st;

    if (cfg->backing != SM_BACKING_ANON) {
        st = probe_secretmem(&works);
        if (st != SM_OK)
            return st;
        if (!works && cfg->backing == SM_BACKING_SECRETMEM_REQUIRED)
            return SM_E_UNSUPPORTED;
    }
    smi_config_set(cfg, works);
    st = smi_rng_init();
    if (st == SM_OK && cfg->disable_core_dumps) {
        st = sm_os_disable_core_dumps();
        if (st != SM_OK)
            smi_rng_fini();
    }
    return st;
}

sm_status sm_init(const sm_config *cfg)
{
    static const sm_config defaults;
    sm_status st = SM_OK;

    if (cfg == NULL)
        cfg = &defaults;
    if ((unsigned)cfg->lock_policy > SM_LOCK_BEST_EFFORT ||
        (unsigned)cfg->backing > SM_BACKING_SECRETMEM_REQUIRED)
        return SM_E_INVAL;
    if (smi_runtime_fork_ready() != SM_OK)
        return SM_E_NOMEM;
    sm_os_mutex_lock(&init_lock);
    if (atomic_load(&ready)) {
        st = config_equal(cfg, smi_config_get()) ? SM_OK : SM_E_STATE;
    } else {
        st = init_locked(cfg);
        if (st == SM_OK) {
            SMI_VG_PUBLISH(&ready);
            atomic_store_explicit(&ready, true, memory_order_release);
        }
    }
    sm_os_mutex_unlock(&init_lock);
    return st;
}

sm_status smi_runtime_ready(void)
{
    if (atomic_load_explicit(&ready, memory_order_acquire)) {
        SMI_VG_RECEIVE(&ready);
        return SM_OK;
    }
    return sm_init(NULL);
}

void smi_runtime_key_purge(void (*hook)(bool ending))
{
    atomic_store(&key_purge, hook);
}

/*
 * Called by every compact make: a load when the table is in place already, so that the
 * make's threads do not all write one shared cache line.
 */
void smi_runtime_outside(const smi_outside_ops *ops)
{
    if (atomic_load(&outside) != ops)
        atomic_store(&outside, ops);
}

bool smi_purge_all(bool ending)
{
    bool intact = smi_registry_purge(ending);
    const smi_outside_ops *p = atomic_load(&outside);
    void (*key)(bool) = atomic_load(&key_purge);

    if (p != NULL)
        intact = p->purge(ending) && intact;
    smi_pool_purge();

    if (key != NULL)
        key(ending);
    smi_rng_forget_key();
    /* Last: the walks above gave the chunks of the streams they purged to the spares. */
    smi_spare_drain();
    return intact;
}

sm_status sm_stats_get(sm_stats *out)
{
    const smi_outside_ops *p = atomic_load(&outside);
    sm_stats s = { 0 };
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = smi_runtime_ready();
    if (st != SM_OK)
        return st;
    s.buffers_live = smi_registry_live(SMI_KIND_BUFFER);
    s.enclaves_live = smi_registry_live(SMI_KIND_ENCLAVE);
    s.streams_live = smi_registry_live(SMI_KIND_STREAM);
    s.secrets_live = smi_registry_live(SMI_KIND_SECRET) + (p != NULL ? p->live() : 0);
    s.allocations_total = atomic_load(&smi_stat_allocations);
    s.bytes_locked = atomic_load(&smi_stat_locked);
    s.bytes_unlocked = atomic_load(&smi_stat_unlocked);
    s.secretmem = smi_config_secretmem();
    *out = s;
    return SM_OK;
}
