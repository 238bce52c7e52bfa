/* fsutil.c - the file system steps that durability depends on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "xalloc.h"

int fs_fsync_dir(const char *path)
{
    int fd, rc, saved;

    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* fs_mkdir_p - each missing component is made in turn, then its parent is
 * fsync'ed so that the new directory entry survives a crash. */
int fs_mkdir_p(const char *path, mode_t mode)
{
    char *copy;
    size_t len;
    struct stat st;
    int rc = 0;

    if (path == NULL || *path == 0) {
        errno = ENOENT;
        return -1;
    }
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
        return -1;
    }
    copy = xstrdup(path);
    len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = 0;
    for (char *p = copy + 1; rc == 0; p++) {
        char save = *p;

        if (save != '/' && save != 0)
            continue;
        *p = 0;
        if (mkdir(copy, mode) == 0) {
            char *slash = strrchr(copy, '/');
            if (slash == copy) {
                rc = fs_fsync_dir("/");
            } else if (slash) {
                *slash = 0;
                rc = fs_fsync_dir(copy);
                *slash = '/';
            } else {
                rc = fs_fsync_dir(".");
            }
        } else if (errno != EEXIST) {
            rc = -1;
        } else if (stat(copy, &st) != 0 || !S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            rc = -1;
        }
        *p = save;
        if (save == 0)
            break;
    }
    {
        int saved = errno;
        free(copy);
        errno = saved;
    }
    return rc;
}

int fs_write_all(int fd, const void *p, size_t len)
{
    const char *s = p;

    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

char *fs_read_file(const char *path, size_t *len)
{
    int fd, saved;
    size_t cap = 4096, n = 0;
    char *data;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    data = xmalloc(cap + 1);
    for (;;) {
        ssize_t r;

        if (n == cap) {
            cap *= 2;
            data = xrealloc(data, cap + 1);
        }
        r = read(fd, data + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            saved = errno;
            free(data);
            close(fd);
            errno = saved;
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    data[n] = 0;
    if (len)
        *len = n;
    return data;
}
