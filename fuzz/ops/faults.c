/* SPDX-License-Identifier: ISC */
/*
 * Forked children: fork handlers, exits, panics, signals and purges that end a process.
 */
#include "model.h"

/* ---- forked children: fork handlers, exits, panics and signals ---- */

/* The coverage flavour's profile runtime, absent from the others. */
extern int __llvm_profile_write_file(void) __attribute__((weak));
extern void __llvm_profile_set_filename(const char *name) __attribute__((weak));

/* A child's own objects, one of each kind, which its purge must make stale (a protected
   secret: guarded regions are purged as buffers already). */
static sm_buffer child_probe;
static sm_enclave child_enclave;
static sm_stream child_stream;
static sm_secret child_secret;

static int child_objects(void)
{
    uint8_t bytes[40];

    memset(bytes, 0x5c, sizeof bytes);
    if (sm_buffer_new(8, &child_probe) != SM_OK ||
        sm_enclave_new(bytes, sizeof bytes, &child_enclave) != SM_OK ||
        sm_stream_new(&child_stream) != SM_OK ||
        sm_secret_new(sm_factory_protected(), bytes, sizeof bytes, &child_secret) != SM_OK)
        return 1;
    memset(bytes, 0x5c, sizeof bytes);
    return sm_stream_write(child_stream, bytes, sizeof bytes) == SM_OK ? 0 : 1;
}

static bool child_objects_stale(void)
{
    return !sm_buffer_is_alive(child_probe) && sm_enclave_size(child_enclave) == 0 &&
           sm_stream_size(child_stream) == 0 && sm_secret_is_closed(child_secret);
}

/*
 * _exit, after writing the child's coverage profile in the coverage flavour (it would
 * be lost otherwise): setting the file name again expands its %p to the child's pid, so
 * that the parent's profile is not overwritten.
 */
static void child_profile(void)
{
    const char *pattern = getenv("LLVM_PROFILE_FILE");

    if (__llvm_profile_write_file != NULL && __llvm_profile_set_filename != NULL &&
        pattern != NULL) {
        __llvm_profile_set_filename(pattern);
        (void)__llvm_profile_write_file();
    }
}

static _Noreturn void child_exit(int code)
{
    child_profile();
    _exit(code);
}

/* Exit code base + 0 if the child's objects were purged before this ran, + 1 if not. */
static void after_purge(int base)
{
    child_exit(child_objects_stale() ? base : base + 1);
}

static void at_exit_check(void) { after_purge(42); }
static void on_abort(int sig) { (void)sig; after_purge(44); }
static void on_caught(int sig) { (void)sig; after_purge(46); }

/*
 * In the child: every pre-fork handle is stale, and new objects work (a new key). The
 * first seal makes the key again in place (rekey_child); an input-chosen fault may fail
 * it with that fault's status, and then the next one must succeed.
 */
static int child_stale_then_fresh(fz_in *in)
{
    static const sm_os_fn rekey_fns[] = { SM_OS_MLOCK, SM_OS_GETRANDOM, SM_OS_MPROTECT };
    uint8_t data[100], copy[100], back[100];
    sm_buffer b;
    sm_enclave e;
    sm_stream s;
    sm_status st;
    size_t got;

    for (unsigned i = 0; i < NB; i++)
        if (sm_buffer_is_alive(M.b[i].h))
            return 10;
    for (unsigned i = 0; i < NE; i++)
        if (sm_enclave_size(M.e[i].h) != 0)
            return 11;
    for (unsigned i = 0; i < NS; i++)
        if (sm_stream_size(M.s[i].h) != 0)
            return 12;
    for (unsigned i = 0; i < NSEC; i++)
        if (!sm_secret_is_closed(M.sec[i].h))
            return 12;
    if (sm_disable_core_dumps() != SM_OK)
        return 18;
    for (unsigned i = 0; i < sizeof data; i++)
        data[i] = copy[i] = (uint8_t)(i * 7);
    fz_faults_clear(&F);
    fz_faults_arm(&F, in, rekey_fns, sizeof rekey_fns / sizeof rekey_fns[0]);
    fz_faults_before(&F);
    st = sm_enclave_new(data, sizeof data, &e);
    fz_faults_after(&F);
    if (st != SM_OK && !(F.fired > 0 && fz_faults_allow(&F, st)))
        return 19;
    fz_faults_clear(&F);
    if (st != SM_OK && sm_enclave_new(data, sizeof data, &e) != SM_OK)
        return 13;
    if (sm_enclave_open(e, &b) != SM_OK)
        return 13;
    if (sm_buffer_size(b) != sizeof data || memcmp(sm_buffer_data(b), copy, sizeof copy) != 0)
        return 14;
    if (sm_stream_new(&s) != SM_OK || sm_stream_write(s, data + 0, 0) != SM_OK)
        return 15;
    memcpy(data, copy, sizeof data);
    if (sm_stream_write(s, data, sizeof data) != SM_OK ||
        sm_stream_read(s, back, sizeof back, &got) != SM_OK || got != sizeof back ||
        memcmp(back, copy, sizeof back) != 0)
        return 16;
    if (sm_buffer_destroy(b) != SM_OK || sm_enclave_destroy(e) != SM_OK ||
        sm_stream_destroy(s) != SM_OK || sm_audit() != SM_OK)
        return 17;
    return 0;
}

/* In the child: a purge of live objects of every kind, then the library still works. */
static int child_purge_and_go_on(void)
{
    uint8_t data[24];
    sm_buffer b;
    sm_stats st;

    if (child_objects() != 0)
        return 30;
    sm_purge();
    if (!child_objects_stale() || sm_buffer_destroy(child_probe) != SM_E_STATE ||
        sm_stats_get(&st) != SM_OK ||
        st.buffers_live + st.enclaves_live + st.streams_live + st.secrets_live != 0)
        return 31;
    memset(data, 1, sizeof data);
    if (sm_buffer_from_bytes(data, sizeof data, &b) != SM_OK || sm_audit() != SM_OK ||
        child_objects() != 0)
        return 32;
    return 0;
}

/* The after_cipher hook of the purge-during-an-operation scenario. */
static void purge_now(void)
{
    smi_coffer_test_after_cipher(NULL);
    sm_purge();
}

/*
 * In the child: a purge that lands while an operation holds its object (as from another
 * thread or a signal handler), through the key's after_cipher hook. The operation gives
 * SM_E_STATE with no output, every handle is stale, the objects it held were finished
 * by the operation itself when it let go of them (spec/registry.md: the purge leaves an
 * object in use to its holder), so none is left live, and the library works
 * afterwards with a new key.
 */
static int child_purge_during(unsigned which)
{
    uint8_t data[64], out[64];
    sm_buffer b = { 0 }, o = { 0x0badull };
    sm_enclave e, eo = { 0x0badull };
    sm_stream s;
    sm_stats st;
    size_t got = 7;
    sm_status r;

    memset(data, 0x33, sizeof data);
    if (sm_enclave_new(data, sizeof data, &e) != SM_OK || sm_buffer_new(64, &b) != SM_OK ||
        sm_stream_new(&s) != SM_OK)
        return 40;
    memset(data, 0x44, sizeof data);
    if (sm_stream_write(s, data, sizeof data) != SM_OK)
        return 41;
    memset(data, 0x55, sizeof data);
    memset(out, 0xa5, sizeof out);
    smi_coffer_test_after_cipher(purge_now);
    switch (which % 5) {
    case 0:
        r = sm_enclave_open(e, &o);
        break;
    case 1:
        r = sm_enclave_open_into(e, b);
        break;
    case 2:
        r = sm_buffer_seal(b, &eo);
        break;
    case 3:
        r = sm_stream_write(s, data, sizeof data);
        break;
    default:
        r = sm_stream_read(s, out, 10, &got);
        break;
    }
    smi_coffer_test_after_cipher(NULL);
    if (r != SM_E_STATE || o.id != 0x0badull || eo.id != 0x0badull)
        return 42;
    for (unsigned i = 0; i < sizeof out; i++)
        if (out[i] != 0xa5 && out[i] != 0)
            return 43;
    if (which % 5 == 3)
        for (unsigned i = 0; i < sizeof data; i++)
            if (data[i] != 0x55)
                return 44; /* a failed write leaves its source as it was */
    if (sm_buffer_is_alive(b) || sm_enclave_size(e) != 0 || sm_stream_size(s) != 0)
        return 45;
    if (sm_stats_get(&st) != SM_OK || st.buffers_live != 0 || st.enclaves_live != 0 ||
        st.streams_live != 0)
        return 46;
    if (child_objects() != 0 || sm_audit() != SM_OK)
        return 47;
    return 0;
}

static sm_status purge_in_access(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)bytes;
    (void)len;
    (void)ctx;
    sm_purge();
    return SM_OK;
}

static sm_status purge_in_fill(uint8_t *bytes, size_t len, void *ctx)
{
    (void)ctx;
    memset(bytes, 0x66, len);
    sm_purge();
    return SM_OK;
}

/*
 * In the child: a purge from inside a secret's access, or inside the fill of a secret
 * being made (as from a signal handler), for each factory (spec/secrets.md, "purge";
 * spec/compact.md, "Purge and fork"). The purge wipes the secret in place and leaves its
 * storage to the access, which frees it on the way out: SM_OK, or SM_E_STATE where the
 * factory could not be kept readable. A compact make that the purge overtook gives
 * SM_E_STATE and makes nothing; the others' secrets are published after the fill, so
 * after the purge, and are made. The pre-purge handle is stale, nothing is left live,
 * and the library works afterwards.
 */
static int child_purge_in_secret(unsigned which)
{
    const sm_factory *f = factory(which % NFACT);
    uint8_t data[32];
    sm_secret x, y = { 0x0badull };
    sm_stats st;
    sm_status r;

    memset(data, 0x66, sizeof data);
    if (sm_secret_new(f, data, sizeof data, &x) != SM_OK)
        return 60;
    if (which / NFACT % 2 == 0) {
        r = sm_secret_with_bytes(x, purge_in_access, NULL);
        if (r != SM_OK && r != SM_E_STATE)
            return 61;
    } else {
        r = sm_secret_from_callback(f, sizeof data, purge_in_fill, NULL, &y);
        /* A compact slot was already in its slab, which the purge took: nothing made. A
           registry-backed secret is published after its fill, so after the purge: made. */
        if (f == sm_factory_compact() ? r != SM_E_STATE || y.id != 0x0badull
                                      : r != SM_OK || sm_secret_size(y) != sizeof data ||
                                            sm_secret_close(y) != SM_OK)
            return 62;
    }
    if (!sm_secret_is_closed(x) || sm_secret_close(x) != SM_E_STATE)
        return 63;
    if (sm_stats_get(&st) != SM_OK || st.secrets_live != 0)
        return 64;
    if (child_objects() != 0 || sm_audit() != SM_OK)
        return 65;
    return 0;
}

/*
 * In the child: one byte of a buffer's canary damaged, then one of the calls that check
 * it. Each must panic (never return): sm_panic purges, then aborts, which on_abort turns
 * into exit 44 once it saw the child's objects purged.
 */
static int child_damaged_canary(unsigned which)
{
    sm_buffer b;
    sm_enclave e;
    uint8_t *d;

    if (child_objects() != 0 || sm_buffer_new(16, &b) != SM_OK)
        return 50;
    d = sm_buffer_data(b);
    d[-1 - (int)(which / 4 % 32)] ^= 0x01;
    (void)signal(SIGABRT, on_abort);
    switch (which % 4) {
    case 0:
        (void)sm_buffer_destroy(b);
        break;
    case 1:
        (void)sm_audit();
        break;
    case 2:
        (void)sm_buffer_seal(b, &e);
        break;
    default:
        sm_purge();
        break;
    }
    return 51; /* it returned */
}

void op_fork(fz_in *in)
{
    static const int kill_sig[] = { SIGKILL }, usr1_kill[] = { SIGUSR1, SIGKILL };
    struct sigaction sa, usr1_was;
    unsigned how = fz_u8(in) % 9, which = fz_u8(in);
    int status, sig, want_exit = -1, want_sig = 0;
    pid_t pid, r;

    if (M.forks++ >= 1)
        return;
    fz_faults_clear(&F);
    fflush(NULL);
    pid = fork();
    FZ_CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        /* The child's panic message and signal deaths are expected: keep them quiet. */
        if (devnull >= 0)
            (void)dup2(devnull, 2);
        sm_os_fault_reset();
        (void)sigaction(SIGUSR1, NULL, &usr1_was);
        if (how == 0)
            child_exit(child_stale_then_fresh(in));
        if (how == 6)
            child_exit(child_purge_and_go_on());
        if (how == 7)
            child_exit(which & 0x80 ? child_purge_in_secret(which & 0x7f)
                                    : child_purge_during(which));
        if (how == 8)
            child_exit(child_damaged_canary(which));
        if (child_objects() != 0)
            child_exit(20);
        switch (how) {
        case 1:
            (void)atexit(at_exit_check);
            sm_safe_exit(9);
        case 2:
            (void)signal(SIGABRT, on_abort);
            sm_panic("fuzz: a deliberate panic in a forked child");
        case 3:
            sig = SIGUSR2;
            if (sm_catch_signals(&sig, 1, on_caught) != SM_OK)
                child_exit(21);
            (void)raise(SIGUSR2);
            child_exit(22);
        case 4:
            /* It leaves signals the process started with ignored alone (nohup). */
            (void)signal(SIGTERM, SIG_DFL);
            if (sm_catch_interrupt() != SM_OK)
                child_exit(23);
            child_profile(); /* the signal ends the child before it could */
            (void)raise(SIGTERM);
            child_exit(24);
        default:
            /* A signal whose default is to be ignored ends the process with 128 + sig. */
            sig = SIGURG;
            if (sm_catch_signals(kill_sig, 1, NULL) != SM_E_INVAL ||
                sm_catch_signals(usr1_kill, 2, NULL) != SM_E_INVAL ||
                sm_catch_signals(NULL, 1, NULL) != SM_E_INVAL ||
                sm_catch_signals(&sig, 1, NULL) != SM_OK)
                child_exit(25);
            /* The refused pair put SIGUSR1 back as it was. */
            if (sigaction(SIGUSR1, NULL, &sa) != 0 || sa.sa_handler != usr1_was.sa_handler)
                child_exit(27);
            child_profile();
            (void)raise(SIGURG);
            child_exit(26);
        }
    }
    /* libFuzzer's timeout timer (SIGALRM) interrupts the wait. */
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        continue;
    FZ_CHECK(r == pid, "waitpid: %s", strerror(errno));
    switch (how) {
    case 0: want_exit = 0; break;
    case 1: want_exit = 42; break;
    case 2: want_exit = 44; break;
    case 3: want_exit = 46; break;
    case 4: want_sig = SIGTERM; break;
    case 5: want_exit = 128 + SIGURG; break;
    case 8: want_exit = 44; break;
    default: want_exit = 0; break;
    }
    fz_trace("fork scenario %u (%u): status %#x", how, which, status);
    if (want_sig != 0)
        FZ_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == want_sig,
                 "fork scenario %u: status %#x, want signal %d", how, status, want_sig);
    else
        FZ_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == want_exit,
                 "fork scenario %u (%u): status %#x, want exit %d", how, which, status,
                 want_exit);
}
