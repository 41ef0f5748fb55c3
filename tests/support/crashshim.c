/* Crash injection for Kavi's tests: an LD_PRELOAD shim that numbers every state-changing
 * libc call (write, rename, fsync, mkdir, create-open, unlink, truncate…) a process makes
 * and, at call number KAVI_CRASH_AT, does what KAVI_CRASH_MODE says:
 *
 *   count   nothing (the total is in the counter file afterwards)
 *   kill    SIGKILL the Kavi process (and the calling child, if it is one) before the call
 *   enospc  fail this call and every later one with ENOSPC (a disk that filled up)
 *   stop    SIGSTOP the Kavi process before the call (a forced interleaving point)
 *
 * The counter lives in a shared 8-byte file (KAVI_CRASH_COUNTER) so that git processes
 * Kavi starts can be numbered in the same sequence (KAVI_CRASH_GIT=1). Writes to
 * stdin/stdout/stderr, pipes, sockets and devices are not state and are not counted.
 * KAVI_CRASH_LOG names a file that receives "N pid op path" for every numbered call.
 *
 * Compiled at test time: gcc -shared -fPIC -O2 -o crashshim.so crashshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { COUNT, KILL, ENOSPC_MODE, STOP };

static volatile long *counter = NULL;
static long target = 0;
static int mode = COUNT;
static int active = 0;
static int log_fd = -1;
static pid_t root = 0;

__attribute__((constructor)) static void crash_init(void) {
    const char *c = getenv("KAVI_CRASH_COUNTER");
    if (!c) return;
    const char *r = getenv("KAVI_CRASH_ROOT");
    if (!r) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", (int)getpid());
        setenv("KAVI_CRASH_ROOT", buf, 1);
        root = getpid();
        active = 1;
    } else {
        root = (pid_t)atoi(r);
        const char *g = getenv("KAVI_CRASH_GIT");
        if (g && g[0] == '1') {
            char exe[512];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n > 0) {
                exe[n] = 0;
                const char *b = strrchr(exe, '/');
                b = b ? b + 1 : exe;
                if (strcmp(b, "git") == 0) active = 1;
            }
        }
    }
    if (!active) return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, c, O_RDWR | O_CLOEXEC);
    if (fd < 0) { active = 0; return; }
    void *m = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    syscall(SYS_close, fd);
    if (m == MAP_FAILED) { active = 0; return; }
    counter = (volatile long *)m;
    const char *a = getenv("KAVI_CRASH_AT");
    target = a ? atol(a) : 0;
    const char *md = getenv("KAVI_CRASH_MODE");
    if (md && !strcmp(md, "kill")) mode = KILL;
    else if (md && !strcmp(md, "enospc")) mode = ENOSPC_MODE;
    else if (md && !strcmp(md, "stop")) mode = STOP;
    const char *l = getenv("KAVI_CRASH_LOG");
    if (l) log_fd = (int)syscall(SYS_openat, AT_FDCWD, l, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

/* 0: go ahead; otherwise the errno the call must fail with. */
static int hit(const char *op, const char *path, int fd) {
    if (!active || !counter) return 0;
    long n = __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
    if (log_fd >= 0) {
        char where[400] = "";
        if (!path && fd >= 0) {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t k = readlink(link, where, sizeof where - 1);
            if (k > 0) where[k] = 0;
            path = where;
        }
        char buf[640];
        int len = snprintf(buf, sizeof buf, "%ld %d %s %s\n", n, (int)getpid(), op, path ? path : "");
        if (len > 0) syscall(SYS_write, log_fd, buf, (size_t)(len < (int)sizeof buf ? len : (int)sizeof buf - 1));
    }
    if (target && n == target) {
        if (mode == KILL) {
            kill(root, SIGKILL);
            kill(getpid(), SIGKILL);
        } else if (mode == STOP && getpid() == root) {
            kill(getpid(), SIGSTOP);
        }
    }
    if (mode == ENOSPC_MODE && target && n >= target) return ENOSPC;
    return 0;
}

static int is_state_fd(int fd) {
    if (fd <= 2) return 0;
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) != 0) return 0;
    return S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
}

#define REAL(name, ret, ...)                                            \
    static ret (*real_##name)(__VA_ARGS__) = NULL;                      \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

#define FAIL_IF(e) do { int err_ = (e); if (err_) { errno = err_; return -1; } } while (0)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, ssize_t, int, const void *, size_t);
    if (is_state_fd(fd)) FAIL_IF(hit("write", NULL, fd));
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    if (is_state_fd(fd)) FAIL_IF(hit("pwrite", NULL, fd));
    return real_pwrite(fd, buf, count, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    if (is_state_fd(fd)) FAIL_IF(hit("pwrite", NULL, fd));
    return real_pwrite64(fd, buf, count, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    if (is_state_fd(fd)) FAIL_IF(hit("writev", NULL, fd));
    return real_writev(fd, iov, n);
}

static int creating(int flags) { return (flags & (O_CREAT | O_TRUNC)) != 0; }

int open(const char *path, int flags, ...) {
    REAL(open, int, const char *, int, ...);
    mode_t m = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); m = (mode_t)va_arg(ap, int); va_end(ap); }
    if (creating(flags)) FAIL_IF(hit("open", path, -1));
    return real_open(path, flags, m);
}

int open64(const char *path, int flags, ...) {
    REAL(open64, int, const char *, int, ...);
    mode_t m = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); m = (mode_t)va_arg(ap, int); va_end(ap); }
    if (creating(flags)) FAIL_IF(hit("open", path, -1));
    return real_open64(path, flags, m);
}

int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat, int, int, const char *, int, ...);
    mode_t m = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); m = (mode_t)va_arg(ap, int); va_end(ap); }
    if (creating(flags)) FAIL_IF(hit("open", path, -1));
    return real_openat(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(openat64, int, int, const char *, int, ...);
    mode_t m = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); m = (mode_t)va_arg(ap, int); va_end(ap); }
    if (creating(flags)) FAIL_IF(hit("open", path, -1));
    return real_openat64(dirfd, path, flags, m);
}

int creat(const char *path, mode_t m) {
    REAL(creat, int, const char *, mode_t);
    FAIL_IF(hit("open", path, -1));
    return real_creat(path, m);
}

int creat64(const char *path, mode_t m) {
    REAL(creat64, int, const char *, mode_t);
    FAIL_IF(hit("open", path, -1));
    return real_creat64(path, m);
}

int rename(const char *a, const char *b) {
    REAL(rename, int, const char *, const char *);
    FAIL_IF(hit("rename", b, -1));
    return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b) {
    REAL(renameat, int, int, const char *, int, const char *);
    FAIL_IF(hit("rename", b, -1));
    return real_renameat(da, a, db, b);
}

int renameat2(int da, const char *a, int db, const char *b, unsigned int flags) {
    REAL(renameat2, int, int, const char *, int, const char *, unsigned int);
    FAIL_IF(hit("rename", b, -1));
    return real_renameat2(da, a, db, b, flags);
}

int link(const char *a, const char *b) {
    REAL(link, int, const char *, const char *);
    FAIL_IF(hit("link", b, -1));
    return real_link(a, b);
}

int linkat(int da, const char *a, int db, const char *b, int flags) {
    REAL(linkat, int, int, const char *, int, const char *, int);
    FAIL_IF(hit("link", b, -1));
    return real_linkat(da, a, db, b, flags);
}

int symlink(const char *a, const char *b) {
    REAL(symlink, int, const char *, const char *);
    FAIL_IF(hit("symlink", b, -1));
    return real_symlink(a, b);
}

int unlink(const char *p) {
    REAL(unlink, int, const char *);
    int e = hit("unlink", p, -1);
    if (e && e != ENOSPC) { errno = e; return -1; }
    return real_unlink(p);
}

int unlinkat(int d, const char *p, int flags) {
    REAL(unlinkat, int, int, const char *, int);
    int e = hit("unlink", p, -1);
    if (e && e != ENOSPC) { errno = e; return -1; }
    return real_unlinkat(d, p, flags);
}

int rmdir(const char *p) {
    REAL(rmdir, int, const char *);
    int e = hit("rmdir", p, -1);
    if (e && e != ENOSPC) { errno = e; return -1; }
    return real_rmdir(p);
}

int mkdir(const char *p, mode_t m) {
    REAL(mkdir, int, const char *, mode_t);
    FAIL_IF(hit("mkdir", p, -1));
    return real_mkdir(p, m);
}

int mkdirat(int d, const char *p, mode_t m) {
    REAL(mkdirat, int, int, const char *, mode_t);
    FAIL_IF(hit("mkdir", p, -1));
    return real_mkdirat(d, p, m);
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate, int, int, off_t);
    if (is_state_fd(fd)) FAIL_IF(hit("ftruncate", NULL, fd));
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64, int, int, off_t);
    if (is_state_fd(fd)) FAIL_IF(hit("ftruncate", NULL, fd));
    return real_ftruncate64(fd, len);
}

int truncate(const char *p, off_t len) {
    REAL(truncate, int, const char *, off_t);
    FAIL_IF(hit("truncate", p, -1));
    return real_truncate(p, len);
}

int fsync(int fd) {
    REAL(fsync, int, int);
    if (is_state_fd(fd)) FAIL_IF(hit("fsync", NULL, fd));
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    if (is_state_fd(fd)) FAIL_IF(hit("fdatasync", NULL, fd));
    return real_fdatasync(fd);
}

int fchmod(int fd, mode_t m) {
    REAL(fchmod, int, int, mode_t);
    if (is_state_fd(fd)) FAIL_IF(hit("fchmod", NULL, fd));
    return real_fchmod(fd, m);
}

int chmod(const char *p, mode_t m) {
    REAL(chmod, int, const char *, mode_t);
    FAIL_IF(hit("chmod", p, -1));
    return real_chmod(p, m);
}
