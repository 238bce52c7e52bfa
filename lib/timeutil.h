/* timeutil.h - clocks.  Wall time for what is recorded (arrival times),
 * monotonic time for timeouts and backoff. */
#ifndef CORREIO_TIMEUTIL_H
#define CORREIO_TIMEUTIL_H

#include <stdint.h>
#include <stddef.h>

uint64_t time_now_us(void);     /* CLOCK_REALTIME, microseconds */
int64_t  time_mono_ms(void);    /* CLOCK_MONOTONIC, milliseconds */

/* time_rfc5322 - "Mon, 23 Nov 2026 08:11:00 +0000" for a wall time in
 * seconds, local zone, into dst (at least 40 bytes).  Returns dst. */
char *time_rfc5322(char *dst, size_t size, int64_t when);

#endif
