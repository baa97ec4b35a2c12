/*
 * uplift's fault shim: records the file-system operations a process makes
 * under one folder, and injects I/O errors into them.
 *
 * Loaded with LD_PRELOAD, it does not interpose libc functions: it installs
 * a seccomp filter that traps the file-system system calls themselves, so it
 * sees every caller alike (libc, Rust's std, and crates such as rustix that
 * issue raw system calls: tempfile's rename is one). The SIGSYS handler
 * carries the call out through a trampoline the filter lets through, and
 * logs it, serialised under one lock, so the log is one total order of what
 * the process did.
 *
 * Environment:
 *   FAULTS_ROOT    the folder whose files are recorded (required: without it
 *                  the shim does nothing)
 *   FAULTS_LOG     where to write the log (binary records, see below)
 *   FAULTS_INJECT  CLASS:N:ERROR[:PATTERN]: the Nth operation of CLASS
 *                  (`write` or `sync`) on a file under the root whose path
 *                  contains PATTERN fails with ERROR: `EIO` (that call only),
 *                  `ENOSPC` (that call and every later matching write: the
 *                  disk stays full) or `short` (a write that writes half).
 *
 * A process started with the shim must not exec another program: the
 * filter outlives exec, the trampoline does not.
 *
 * x86_64 Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

/* Record types (keep in sync with tests/all/faults.rs). */
enum {
    R_CREATE = 1,   /* path, ino: a file the call created */
    R_MKDIR = 2,    /* path */
    R_WRITE = 3,    /* path, ino, offset, data (what was written) */
    R_TRUNC = 4,    /* path, ino, offset = new size */
    R_SYNC = 5,     /* path, ino, offset = 1 for a folder; fsync or fdatasync */
    R_RENAME = 6,   /* path -> path2, offset = flags */
    R_UNLINK = 7,   /* path, offset = 1 for rmdir */
    R_LINK = 8,     /* path -> path2 */
    R_OUT = 9,      /* data written to standard output or error */
    R_RANGE = 10,   /* sync_file_range: starts writeback, makes nothing durable */
    R_INJECT = 11,  /* an injected fault: path, offset = errno (0: short write) */
    R_OTHER = 12,   /* a call the model does not know (fallocate, copy_file_range...) */
    R_GLOBAL = 13,  /* sync or syncfs: everything durable */
};

struct record {
    uint32_t type;
    int32_t ret;
    uint64_t ino;
    int64_t offset;
    uint64_t data_len;
    uint32_t path_len;
    uint32_t path2_len;
};

/* The only syscall instruction the filter lets through. */
long faults_raw(long n, long a, long b, long c, long d, long e, long f);
extern char faults_raw_after[];
__asm__(".text\n"
        ".globl faults_raw\n"
        ".hidden faults_raw\n"
        ".type faults_raw,@function\n"
        "faults_raw:\n"
        "  mov %rdi, %rax\n"
        "  mov %rsi, %rdi\n"
        "  mov %rdx, %rsi\n"
        "  mov %rcx, %rdx\n"
        "  mov %r8, %r10\n"
        "  mov %r9, %r8\n"
        "  mov 8(%rsp), %r9\n"
        "  syscall\n"
        ".globl faults_raw_after\n"
        ".hidden faults_raw_after\n"
        "faults_raw_after:\n"
        "  ret\n");

static char root[PATH_MAX];
static size_t root_len;
static int log_fd = -1;

static int inj_class; /* 0 none, 1 write, 2 sync */
static long inj_nth;
static int inj_err;   /* errno, or 0 for a short write */
static char inj_pattern[PATH_MAX];
static long inj_seen;
static int inj_full;  /* ENOSPC fired: later matching writes fail too */

static volatile int lock_word;

static void lock(void) {
    while (__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
        faults_raw(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

static void unlock(void) { __atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE); }

static void log_bytes(const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        long w = faults_raw(SYS_write, log_fd, (long)c, (long)n, 0, 0, 0);
        if (w == -EINTR)
            continue;
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void emit(uint32_t type, long ret, uint64_t ino, int64_t offset, const char *path,
                 const char *path2, const struct iovec *data, int ndata, size_t data_len) {
    if (log_fd < 0)
        return;
    struct record r = {type, (int32_t)ret, ino, offset, data_len,
                       path ? (uint32_t)strlen(path) : 0, path2 ? (uint32_t)strlen(path2) : 0};
    log_bytes(&r, sizeof r);
    if (path)
        log_bytes(path, r.path_len);
    if (path2)
        log_bytes(path2, r.path2_len);
    size_t left = data_len;
    for (int i = 0; i < ndata && left > 0; i++) {
        size_t n = data[i].iov_len < left ? data[i].iov_len : left;
        log_bytes(data[i].iov_base, n);
        left -= n;
    }
}

static int under_root(const char *path) {
    return strncmp(path, root, root_len) == 0 && (path[root_len] == '/' || path[root_len] == 0);
}

/* What a descriptor refers to: its path (without " (deleted)"), inode and kind. */
struct fdinfo {
    char path[PATH_MAX];
    uint64_t ino;
    int is_dir;
    int tracked;
};

static void fd_info(int fd, struct fdinfo *out) {
    out->tracked = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out->path, sizeof out->path - 1);
    if (n <= 0)
        return;
    out->path[n] = 0;
    const char *deleted = " (deleted)";
    size_t dl = strlen(deleted);
    if ((size_t)n > dl && strcmp(out->path + n - dl, deleted) == 0)
        out->path[n - dl] = 0;
    out->ino = st.st_ino;
    out->is_dir = S_ISDIR(st.st_mode);
    out->tracked = under_root(out->path);
}

/* An absolute form of a path given relative to dirfd. */
static void resolve(int dirfd, const char *path, char *out) {
    if (path[0] == '/') {
        snprintf(out, PATH_MAX, "%s", path);
        return;
    }
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base))
            base[0] = 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        base[n > 0 ? n : 0] = 0;
    }
    snprintf(out, PATH_MAX, "%s/%s", base, path);
}

/* Whether this operation of `class` on `path` gets the injected fault:
 * returns the errno to fail with, 0 for a short write, or -1 for none. */
static int injected(int class, const char *path) {
    if (inj_class != class || strstr(path, inj_pattern) == NULL)
        return -1;
    inj_seen++;
    if (inj_full && class == 1)
        return ENOSPC;
    if (inj_seen != inj_nth)
        return -1;
    if (inj_err == ENOSPC)
        inj_full = 1;
    return inj_err;
}

static long do_write(long nr, long *a) {
    int fd = (int)a[0];
    struct iovec one;
    const struct iovec *iov;
    int iovcnt;
    if (nr == SYS_write || nr == SYS_pwrite64) {
        one.iov_base = (void *)a[1];
        one.iov_len = (size_t)a[2];
        iov = &one;
        iovcnt = 1;
    } else {
        iov = (const struct iovec *)a[1];
        iovcnt = (int)a[2];
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;

    if (fd == 1 || fd == 2) {
        long ret = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (ret > 0)
            emit(R_OUT, ret, (uint64_t)fd, 0, NULL, NULL, iov, iovcnt, (size_t)ret);
        return ret;
    }
    struct fdinfo fi;
    fd_info(fd, &fi);
    if (!fi.tracked)
        return faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);

    int64_t offset;
    if (nr == SYS_pwrite64 || nr == SYS_pwritev || nr == SYS_pwritev2) {
        offset = (int64_t)a[3];
    } else {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0 && (flags & O_APPEND)) {
            struct stat st;
            offset = fstat(fd, &st) == 0 ? st.st_size : -1;
        } else {
            offset = lseek(fd, 0, SEEK_CUR);
        }
    }

    int fault = injected(1, fi.path);
    if (fault > 0) {
        emit(R_INJECT, -fault, fi.ino, fault, fi.path, NULL, NULL, 0, 0);
        return -fault;
    }
    long ret;
    struct iovec cut[64];
    if (fault == 0 && total > 1) {
        /* A short write: the first half only. */
        size_t want = total / 2, got = 0;
        int n = 0;
        for (int i = 0; i < iovcnt && got < want && n < 64; i++, n++) {
            cut[n] = iov[i];
            if (cut[n].iov_len > want - got)
                cut[n].iov_len = want - got;
            got += cut[n].iov_len;
        }
        emit(R_INJECT, (long)got, fi.ino, 0, fi.path, NULL, NULL, 0, 0);
        if (nr == SYS_write || nr == SYS_pwrite64)
            ret = faults_raw(nr, a[0], (long)cut[0].iov_base, (long)cut[0].iov_len, a[3], 0, 0);
        else
            ret = faults_raw(nr, a[0], (long)cut, n, a[3], a[4], a[5]);
    } else {
        ret = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    if (ret > 0)
        emit(R_WRITE, ret, fi.ino, offset, fi.path, NULL, iov, iovcnt, (size_t)ret);
    return ret;
}

static long do_open(long nr, long *a) {
    int dirfd = AT_FDCWD;
    const char *path;
    long flags;
    if (nr == SYS_open) {
        path = (const char *)a[0];
        flags = a[1];
    } else if (nr == SYS_creat) {
        path = (const char *)a[0];
        flags = O_CREAT | O_WRONLY | O_TRUNC;
    } else if (nr == SYS_openat) {
        dirfd = (int)a[0];
        path = (const char *)a[1];
        flags = a[2];
    } else { /* openat2 */
        dirfd = (int)a[0];
        path = (const char *)a[1];
        flags = (long)((const struct open_how *)a[2])->flags;
    }
    char abs[PATH_MAX];
    resolve(dirfd, path, abs);
    if (!under_root(abs) || !(flags & (O_CREAT | O_TRUNC)))
        return faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    struct stat before;
    int existed = stat(abs, &before) == 0;
    long fd = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat((int)fd, &st) != 0 || !S_ISREG(st.st_mode))
        return fd;
    if (!existed)
        emit(R_CREATE, 0, st.st_ino, 0, abs, NULL, NULL, 0, 0);
    else if (flags & O_TRUNC)
        emit(R_TRUNC, 0, st.st_ino, 0, abs, NULL, NULL, 0, 0);
    return fd;
}

static long do_sync(long nr, long *a) {
    struct fdinfo fi;
    fd_info((int)a[0], &fi);
    if (!fi.tracked)
        return faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (nr == SYS_sync_file_range) {
        long ret = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        emit(R_RANGE, ret, fi.ino, 0, fi.path, NULL, NULL, 0, 0);
        return ret;
    }
    int fault = injected(2, fi.path);
    if (fault > 0) {
        emit(R_INJECT, -fault, fi.ino, fault, fi.path, NULL, NULL, 0, 0);
        return -fault;
    }
    long ret = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (ret == 0)
        emit(R_SYNC, 0, fi.ino, fi.is_dir, fi.path, NULL, NULL, 0, 0);
    return ret;
}

static long do_truncate(long nr, long *a) {
    long ret;
    if (nr == SYS_ftruncate) {
        struct fdinfo fi;
        fd_info((int)a[0], &fi);
        ret = faults_raw(nr, a[0], a[1], 0, 0, 0, 0);
        if (fi.tracked && ret == 0)
            emit(R_TRUNC, 0, fi.ino, a[1], fi.path, NULL, NULL, 0, 0);
        return ret;
    }
    char abs[PATH_MAX];
    resolve(AT_FDCWD, (const char *)a[0], abs);
    ret = faults_raw(nr, a[0], a[1], 0, 0, 0, 0);
    struct stat st;
    if (ret == 0 && under_root(abs) && stat(abs, &st) == 0)
        emit(R_TRUNC, 0, st.st_ino, a[1], abs, NULL, NULL, 0, 0);
    return ret;
}

static long do_names(long nr, long *a) {
    char p1[PATH_MAX], p2[PATH_MAX];
    long ret = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (ret != 0)
        return ret;
    switch (nr) {
    case SYS_rename:
    case SYS_link:
        resolve(AT_FDCWD, (const char *)a[0], p1);
        resolve(AT_FDCWD, (const char *)a[1], p2);
        if (under_root(p1) || under_root(p2))
            emit(nr == SYS_link ? R_LINK : R_RENAME, 0, 0, 0, p1, p2, NULL, 0, 0);
        break;
    case SYS_renameat:
    case SYS_renameat2:
    case SYS_linkat:
        resolve((int)a[0], (const char *)a[1], p1);
        resolve((int)a[2], (const char *)a[3], p2);
        if (under_root(p1) || under_root(p2))
            emit(nr == SYS_linkat ? R_LINK : R_RENAME, 0, 0,
                 nr == SYS_renameat2 ? a[4] : 0, p1, p2, NULL, 0, 0);
        break;
    case SYS_unlink:
    case SYS_rmdir:
        resolve(AT_FDCWD, (const char *)a[0], p1);
        if (under_root(p1))
            emit(R_UNLINK, 0, 0, nr == SYS_rmdir, p1, NULL, NULL, 0, 0);
        break;
    case SYS_unlinkat:
        resolve((int)a[0], (const char *)a[1], p1);
        if (under_root(p1))
            emit(R_UNLINK, 0, 0, (a[2] & AT_REMOVEDIR) != 0, p1, NULL, NULL, 0, 0);
        break;
    case SYS_mkdir:
        resolve(AT_FDCWD, (const char *)a[0], p1);
        if (under_root(p1))
            emit(R_MKDIR, 0, 0, 0, p1, NULL, NULL, 0, 0);
        break;
    case SYS_mkdirat:
        resolve((int)a[0], (const char *)a[1], p1);
        if (under_root(p1))
            emit(R_MKDIR, 0, 0, 0, p1, NULL, NULL, 0, 0);
        break;
    }
    return ret;
}

static long do_other(long nr, long *a) {
    long ret = faults_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (nr == SYS_sync || nr == SYS_syncfs) {
        emit(R_GLOBAL, ret, 0, 0, NULL, NULL, NULL, 0, 0);
        return ret;
    }
    /* fallocate(fd), copy_file_range(in, off, out), sendfile(out, in): the
     * file written is argument 0, 2 or 0. */
    int fd = (int)(nr == SYS_copy_file_range ? a[2] : a[0]);
    struct fdinfo fi;
    fd_info(fd, &fi);
    if (fi.tracked)
        emit(R_OTHER, ret, fi.ino, nr, fi.path, NULL, NULL, 0, 0);
    return ret;
}

static long handle(long nr, long *a) {
    switch (nr) {
    case SYS_write:
    case SYS_pwrite64:
    case SYS_writev:
    case SYS_pwritev:
    case SYS_pwritev2:
        return do_write(nr, a);
    case SYS_open:
    case SYS_openat:
    case SYS_openat2:
    case SYS_creat:
        return do_open(nr, a);
    case SYS_fsync:
    case SYS_fdatasync:
    case SYS_sync_file_range:
        return do_sync(nr, a);
    case SYS_ftruncate:
    case SYS_truncate:
        return do_truncate(nr, a);
    case SYS_rename:
    case SYS_renameat:
    case SYS_renameat2:
    case SYS_link:
    case SYS_linkat:
    case SYS_unlink:
    case SYS_unlinkat:
    case SYS_rmdir:
    case SYS_mkdir:
    case SYS_mkdirat:
        return do_names(nr, a);
    default:
        return do_other(nr, a);
    }
}

static void on_sigsys(int sig, siginfo_t *info, void *vctx) {
    (void)sig;
    ucontext_t *ctx = vctx;
    greg_t *g = ctx->uc_mcontext.gregs;
    long a[6] = {g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9]};
    int saved = errno;
    lock();
    long ret = handle(info->si_syscall, a);
    unlock();
    g[REG_RAX] = ret;
    errno = saved;
}

static const long trapped[] = {
    SYS_write,     SYS_pwrite64,   SYS_writev,   SYS_pwritev,         SYS_pwritev2,
    SYS_open,      SYS_openat,     SYS_openat2,  SYS_creat,           SYS_fsync,
    SYS_fdatasync, SYS_ftruncate,  SYS_truncate, SYS_sync_file_range, SYS_rename,
    SYS_renameat,  SYS_renameat2,  SYS_link,     SYS_linkat,          SYS_unlink,
    SYS_unlinkat,  SYS_rmdir,      SYS_mkdir,    SYS_mkdirat,         SYS_fallocate,
    SYS_copy_file_range, SYS_sendfile, SYS_sync, SYS_syncfs,
};

static void die(const char *what) {
    const char *p = "faults shim: ";
    faults_raw(SYS_write, 2, (long)p, (long)strlen(p), 0, 0, 0);
    faults_raw(SYS_write, 2, (long)what, (long)strlen(what), 0, 0, 0);
    faults_raw(SYS_write, 2, (long)"\n", 1, 0, 0, 0);
    _exit(97);
}

__attribute__((constructor)) static void faults_init(void) {
    const char *r = getenv("FAULTS_ROOT");
    if (!r || !*r)
        return;
    if (!realpath(r, root))
        die("FAULTS_ROOT does not exist");
    root_len = strlen(root);
    const char *logp = getenv("FAULTS_LOG");
    if (logp && *logp) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            die("cannot open FAULTS_LOG");
        log_fd = fcntl(fd, F_DUPFD_CLOEXEC, 900);
        close(fd);
    }
    const char *inj = getenv("FAULTS_INJECT");
    if (inj && *inj) {
        char class[16] = {0}, err[16] = {0};
        int used = 0;
        if (sscanf(inj, "%15[^:]:%ld:%15[^:]%n", class, &inj_nth, err, &used) < 3)
            die("FAULTS_INJECT is CLASS:N:ERROR[:PATTERN]");
        inj_class = strcmp(class, "write") == 0 ? 1 : strcmp(class, "sync") == 0 ? 2 : 0;
        if (!inj_class)
            die("FAULTS_INJECT class is write or sync");
        if (strcmp(err, "EIO") == 0)
            inj_err = EIO;
        else if (strcmp(err, "ENOSPC") == 0)
            inj_err = ENOSPC;
        else if (strcmp(err, "short") == 0 && inj_class == 1)
            inj_err = 0;
        else
            die("FAULTS_INJECT error is EIO, ENOSPC or short (writes only)");
        if (inj[used] == ':')
            snprintf(inj_pattern, sizeof inj_pattern, "%s", inj + used + 1);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        die("sigaction(SIGSYS)");

    uintptr_t ip = (uintptr_t)faults_raw_after;
    size_t n = sizeof trapped / sizeof trapped[0];
    struct sock_filter prog[80];
    size_t k = 0;
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    /* For each trapped number: jump to the IP check (after the list and the
     * ALLOW that ends it). */
    for (size_t i = 0; i < n; i++)
        prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)trapped[i],
                                                 (uint8_t)(n - i), 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, instruction_pointer) + 4);
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip >> 32), 0, 2);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, instruction_pointer));
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip, 1, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fprog = {(unsigned short)k, prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0)
        die("PR_SET_SECCOMP");
}
