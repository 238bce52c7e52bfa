/* supervisor.h - `correio run`: start every stage of one host and keep
 * them running (Postfix's master, in small).
 *
 * The master holds a write lock on run_directory/master.pid for as long
 * as it runs (an fcntl lock: the kernel drops it when the master dies,
 * so a stale pid file never blocks a start).  `correio stop` and
 * `correio status` find the master through that lock.
 */
#ifndef CORREIO_SUPERVISOR_H
#define CORREIO_SUPERVISOR_H

#include <sys/types.h>
#include "config.h"

#define SUPERVISOR_PID_FILE "master.pid"

/* supervisor_master_pid - the pid of the master that holds the lock on
 * cfg's pid file, or 0 when none runs. */
pid_t supervisor_master_pid(const config_t *cfg);

#endif
