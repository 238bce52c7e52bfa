/* backup_files.h - the file and LMDB steps of `correio backup` and
 * `correio restore` (cmd_backup.c): copying a directory tree, finding
 * and hot-copying LMDB environments, asking whether one is in use or
 * holds anything, running tar, removing a staging tree.
 *
 * Every function that fails prints its own "correio: ..." message
 * (ctl_error) naming the path and the reason, then returns -1.
 */
#ifndef CORREIO_BACKUP_FILES_H
#define CORREIO_BACKUP_FILES_H

#include <stdbool.h>
#include <sys/types.h>

#define BK_EXCL_MAX 16

/* bk_excl - directories a walk leaves out, by device and inode (so that
 * two spellings of one path are the same directory). */
typedef struct bk_excl {
    size_t n;
    struct {
        dev_t dev;
        ino_t ino;
    } d[BK_EXCL_MAX];
} bk_excl;

/* bk_excl_add - leave path out of walks; a path that does not exist is
 * ignored. */
void bk_excl_add(bk_excl *x, const char *path);

/* bk_copy_tree - copy the regular files and directories under src into
 * dst (created), following symbolic links and keeping the permission
 * bits; x's directories, sockets, FIFOs and devices are left out.
 * Returns the number of files copied, or -1. */
long bk_copy_tree(const char *src, const char *dst, const bk_excl *x);

/* bk_list_files - the regular files under root, as paths relative to it
 * (symbolic links and everything else are skipped with a warning).
 * Returns a NULL-terminated array the caller frees with bk_free_list,
 * or NULL. */
char **bk_list_files(const char *root);

/* bk_find_envs - the directories under root (x's left out) that hold an
 * LMDB environment (a data.mdb), relative to root, sorted.  Returns a
 * NULL-terminated array (bk_free_list), or NULL. */
char **bk_find_envs(const char *root, const bk_excl *x);
void bk_free_list(char ***list);

/* bk_env_copy - a consistent, compacted copy (mdb_env_copy2 with
 * MDB_CP_COMPACT) of the environment in dir, opened read-only, written
 * to dst/data.mdb (dst exists).  Safe while a stage writes the
 * environment: the copy is one read transaction.  0 or -1. */
int bk_env_copy(const char *dir, const char *dst);

/* bk_env_in_use - true when a process has the environment in dir open
 * (it holds the lock LMDB takes on dir/lock.mdb); *pid is that process
 * (0 when the kernel does not say, e.g. another pid namespace). */
bool bk_env_in_use(const char *dir, pid_t *pid);

/* bk_env_entries - the records in the environment in dir (summed over
 * its named databases), 0 when there is none; -1 when it cannot be read.
 * The environment must not be in use. */
long long bk_env_entries(const char *dir);

/* bk_run - run argv[0] (found in PATH) with argv, stdin from /dev/null,
 * umask 077, and wait.  0 when it exits 0. */
int bk_run(char *const argv[]);

/* bk_install_file - copy src to dst through dst.restore-tmp, fsync,
 * rename; mode is dst's mode.  0 or -1. */
int bk_install_file(const char *src, const char *dst, mode_t mode);

/* bk_same_file - true when the files a and b exist with the same bytes. */
bool bk_same_file(const char *a, const char *b);

/* bk_remove_tree - remove path and everything under it (symbolic links
 * are removed, not followed).  0 or -1. */
int bk_remove_tree(const char *path);

/* bk_safe_relpath - true when rel is a relative path without "." or ".."
 * components, empty components or control characters. */
bool bk_safe_relpath(const char *rel);

#endif
