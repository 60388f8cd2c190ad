/* Does this CPU really run AMX? Some VMs list amx_tile in CPUID and /proc/cpuinfo, then fault on the first
 * tile instruction. Exit 0 only when a tile configuration loads and a tile is zeroed; a fault kills the
 * process (SIGILL), so run it in a child. Compiled by scripts/build-engine (choosing the engine's build flags)
 * and into the container image (choosing the engine's CPU variant at container start: deploy/entrypoint). */
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) return 2;
    unsigned char cfg[64]; memset(cfg, 0, sizeof cfg);
    cfg[0] = 1; cfg[16] = 64; cfg[48] = 16;
    _tile_loadconfig(cfg); _tile_zero(0); _tile_release();
    return 0;
}
