#pragma once
// glibc's malloc and messages of d doubles.
//
// ZeroMQ allocates every message it receives or sends and frees it once delivered, so a run with
// large d allocates and frees blocks of 8·d bytes several times per round and process. glibc
// serves blocks above its mmap threshold (128 KiB at first) with mmap(), and shrinks its heaps
// (munmap, MADV_DONTNEED) once more than its trim threshold is free at their top; either way
// the next message's pages are faulted in and zeroed by the kernel again. glibc raises both
// thresholds by itself when it sees a large block freed, but only to twice the block's size for
// trimming, which several messages freed together exceed. Measured (GD, d = 1e6, n = 4 workers
// on loopback, 2 cores): rounds took 114–143 ms instead of 30–37 ms in 4 of 8 starts, stuck in
// that mode for the whole run; with a trim threshold of 2 messages still in 3 of 3, with 4 or
// more in none of 11.

#include <cstddef>

namespace marina::util {

// Keeps blocks of up to `message_bytes` (the run's largest message) in the heap and heaps from
// shrinking below four of them, through mallopt(). Only ever raises what an earlier call set;
// the mmap threshold is capped at glibc's maximum (32 MiB on 64-bit, 16 MiB on 32-bit targets).
// Up to four freed blocks of that size stay with the process for reuse (at d = 1e6 a worker's
// peak RSS, which varies by a few messages from run to run anyway, reached 15 MiB more once;
// the coordinator's, whose largest message is a snapshot of 3·d doubles, 25–40 MiB more). Does
// nothing for messages below 128 KiB or without glibc. Returns whether it changed the settings.
bool keep_message_blocks_in_heap(std::size_t message_bytes);

}  // namespace marina::util
