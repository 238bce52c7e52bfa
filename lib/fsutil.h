/* fsutil.h - file system steps that durability depends on. */
#ifndef CORREIO_FSUTIL_H
#define CORREIO_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* fs_mkdir_p - create path and missing parents with mode; when a
 * directory is created, its parent is fsync'ed so the new entry is
 * durable.  Returns 0 or -1 with errno. */
int fs_mkdir_p(const char *path, mode_t mode);
/* fs_fsync_dir - fsync a directory (to make a rename or create durable). */
int fs_fsync_dir(const char *path);
/* fs_write_all - write len bytes, retrying short writes and EINTR. */
int fs_write_all(int fd, const void *p, size_t len);
/* fs_read_file - whole file into fresh memory (NUL-terminated); NULL with
 * errno on failure. */
char *fs_read_file(const char *path, size_t *len);

#endif
