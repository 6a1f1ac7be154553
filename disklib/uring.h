/* Private to disklib: reads issued as concurrent pieces (uring.c). */
#ifndef DISKLIB_URING_H
#define DISKLIB_URING_H

#include <stdint.h>

struct dl_uring_pool;

/* -ENOSYS when io_uring is not available (not built, or switched off). */
int dl_uring_pool_new(unsigned depth, struct dl_uring_pool **ret);
void dl_uring_pool_free(struct dl_uring_pool *p);
/* Read len bytes at off of fd into buf as pieces of `piece` bytes in
 * flight together; whole or a negative errno. -EAGAIN: not done this way
 * (too small, too many pieces, no ring), the caller reads it itself. */
int dl_uring_pread_split(struct dl_uring_pool *p, int fd, void *buf,
                         uint64_t len, uint64_t off, uint64_t piece);

#endif
