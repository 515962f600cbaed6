/* modbus_rtt: the C reference of lampbench's Modbus figure (docs/BENCHMARKS.md, item 3).
 *
 * Times Modbus TCP round trips with plain libmodbus against one RA-610 (simulated by `lampsim serve`), the same
 * exchange the Swift driver does each control period: write holding registers 0..27 (command, heartbeat, tool,
 * watchdog_ms, stream_period_us, targets) and read the status mirror 256..295.
 *
 *   modbus_rtt HOST PORT MODE COUNT WARMUP
 *     MODE rw17:  one 0x17 (write/read multiple registers) per round trip
 *     MODE split: 0x10 (write 28) then 0x03 (read 40), timed together
 *
 * Prints one line per timed round trip: nanoseconds (CLOCK_MONOTONIC). Exit 1 on any error (named on stderr).
 * Built by lampbench: cc -O2 modbus_rtt.c $(pkg-config --cflags --libs libmodbus).
 */
#include <errno.h>
#include <modbus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WRITE_COUNT 28
#define READ_ADDRESS 256
#define READ_COUNT 40

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int exchange(modbus_t *ctx, int split, uint16_t *out, uint16_t *in) {
    if (!split) return modbus_write_and_read_registers(ctx, 0, WRITE_COUNT, out, READ_ADDRESS, READ_COUNT, in);
    if (modbus_write_registers(ctx, 0, WRITE_COUNT, out) != WRITE_COUNT) return -1;
    return modbus_read_registers(ctx, READ_ADDRESS, READ_COUNT, in);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: modbus_rtt HOST PORT rw17|split COUNT WARMUP\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int split = strcmp(argv[3], "split") == 0;
    long count = atol(argv[4]);
    long warmup = atol(argv[5]);
    modbus_t *ctx = modbus_new_tcp(host, port);
    if (ctx == NULL) {
        fprintf(stderr, "modbus_rtt: modbus_new_tcp %s:%d: %s\n", host, port, modbus_strerror(errno));
        return 1;
    }
    modbus_set_slave(ctx, 1);
    modbus_set_response_timeout(ctx, 1, 0);
    if (modbus_connect(ctx) == -1) {
        fprintf(stderr, "modbus_rtt: connect %s:%d: %s\n", host, port, modbus_strerror(errno));
        modbus_free(ctx);
        return 1;
    }
    uint16_t out[WRITE_COUNT] = {0};
    uint16_t in[READ_COUNT];
    out[5] = 100;  /* watchdog_ms: a valid value (20..1000) */
    out[6] = 4000; /* stream_period_us: a valid value (250..20000) */
    uint64_t *samples = calloc((size_t)count, sizeof(uint64_t));
    if (samples == NULL) return 1;
    for (long i = 0; i < warmup + count; i++) {
        out[1] = (uint16_t)i; /* heartbeat */
        uint64_t start = now_ns();
        if (exchange(ctx, split, out, in) != READ_COUNT) {
            fprintf(stderr, "modbus_rtt: request %ld to %s:%d: %s\n", i, host, port, modbus_strerror(errno));
            modbus_close(ctx);
            modbus_free(ctx);
            return 1;
        }
        uint64_t end = now_ns();
        if (i >= warmup) samples[i - warmup] = end - start;
    }
    modbus_close(ctx);
    modbus_free(ctx);
    for (long i = 0; i < count; i++) printf("%llu\n", (unsigned long long)samples[i]);
    free(samples);
    return 0;
}
