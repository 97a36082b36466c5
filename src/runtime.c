/* SPDX-License-Identifier: ISC */
/*
 * The runtime: one configuration per process, set by sm_init or, failing that, by the
 * first call that needs it (SM-REQ-001). After initialisation the configuration is
 * read without a lock: "ready" is published with release order after it is written.
 */
#include "compact.h"

_Atomic uint64_t smi_stat_allocations, smi_stat_locked, smi_stat_unlocked;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool ready;
static sm_config config;
static bool secretmem;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static atomic_bool atfork_ok;

SMI_VG_AT_START(vg_runtime)
{
    SMI_VG_ATOMIC(&ready, sizeof ready);
    SMI_VG_ATOMIC(&atfork_ok, sizeof atfork_ok);
    SMI_VG_ATOMIC(&smi_stat_allocations, sizeof smi_stat_allocations);
    SMI_VG_ATOMIC(&smi_stat_locked, sizeof smi_stat_locked);
    SMI_VG_ATOMIC(&smi_stat_unlocked, sizeof smi_stat_unlocked);
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
 * for it for ever). Prepare handlers run in the reverse order of registration and these
 * are registered first (the coffer's only at the first seal, which needs the runtime),
 * so a fork takes the coffer's locks, then init_lock, then the registry lock: the order
 * in which the library's own paths nest them, which never hold init_lock or the
 * registry lock while they take a coffer lock.
 */
static void before_fork(void)
{
    pthread_mutex_lock(&init_lock);
    smi_registry_before_fork();
    smi_compact_before_fork(); /* last: no compact path takes the others inside it */
}

static void fork_parent(void)
{
    smi_compact_fork_parent();
    smi_registry_fork_parent();
    pthread_mutex_unlock(&init_lock);
}

/* The forked child: both locks afresh, the registry's slots, the canary generator's key. */
static void after_fork(void)
{
    pthread_mutex_init(&init_lock, NULL);
    smi_registry_after_fork();
    smi_compact_after_fork();
    smi_rng_after_fork();
}

/*
 * Registered before init_lock is first taken, or a fork could still catch it held
 * before the handlers exist. pthread_once for the reason coffer.c gives (glibc restarts
 * a once-routine that a fork interrupted). It fails only when libc cannot grow its
 * handler list: then no call can be made fork-safe, and every sm_init of the process
 * gives SM_E_NOMEM.
 */
static void atfork_register(void)
{
    atomic_store(&atfork_ok, sm_os_atfork(before_fork, fork_parent, after_fork) == SM_OK);
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
    config = *cfg;
    secretmem = works;
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
    pthread_once(&atfork_once, atfork_register);
    if (!atomic_load(&atfork_ok))
        return SM_E_NOMEM;
    pthread_mutex_lock(&init_lock);
    if (atomic_load(&ready)) {
        st = config_equal(cfg, &config) ? SM_OK : SM_E_STATE;
    } else {
        st = init_locked(cfg);
        if (st == SM_OK) {
            SMI_VG_PUBLISH(&ready);
            atomic_store_explicit(&ready, true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&init_lock);
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

const sm_config *smi_runtime_config(void)
{
    return &config;
}

bool smi_runtime_secretmem(void)
{
    return secretmem;
}

sm_status sm_stats_get(sm_stats *out)
{
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
    s.secrets_live = smi_registry_live(SMI_KIND_SECRET) + smi_compact_live();
    s.allocations_total = atomic_load(&smi_stat_allocations);
    s.bytes_locked = atomic_load(&smi_stat_locked);
    s.bytes_unlocked = atomic_load(&smi_stat_unlocked);
    s.secretmem = secretmem;
    *out = s;
    return SM_OK;
}

/* Each kind's part in the registry's walks; the other kinds arrive with their modules. */
const smi_kind_ops smi_kind_ops_table[SMI_KIND_COUNT] = {
    [SMI_KIND_BUFFER] = { smi_buffer_purge, smi_buffer_wipe, smi_buffer_audit, smi_buffer_forget,
                          NULL },
    [SMI_KIND_ENCLAVE] = { smi_enclave_purge, smi_enclave_wipe, smi_enclave_audit,
                           smi_enclave_forget, NULL },
    [SMI_KIND_STREAM] = { smi_stream_purge, smi_stream_wipe, smi_stream_audit, smi_stream_forget,
                          NULL },
    /* Only a secret's pages are read outside its lock (by accesses): in_use. */
    [SMI_KIND_SECRET] = { smi_secret_purge, smi_secret_wipe, smi_secret_audit, smi_secret_forget,
                          smi_secret_in_use },
};
