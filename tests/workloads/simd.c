/* simd CTL: loads distinct patterns into ymm0..ymm15 (xmm0..xmm15 without AVX) and a
 * non-default MXCSR (round toward zero), then spins in one asm block until a flag in
 * memory is set by the SIGUSR1 handler (the kernel saves and restores the vector state
 * around the handler). It then stores the registers and compares. The test sends SIGUSR1
 * after restart. */
#include "wl.h"

static volatile int flag;
static uint8_t in[16][32] __attribute__((aligned(32)));
static uint8_t out[16][32] __attribute__((aligned(32)));

static void on_usr1(int sig)
{
	(void)sig;
	flag = 1;
}

#define LOADY(n) "vmovdqa " #n "*32(%[in]), %%ymm" #n "\n\t"
#define STOREY(n) "vmovdqa %%ymm" #n ", " #n "*32(%[out])\n\t"
#define LOADX(n) "movdqa " #n "*32(%[in]), %%xmm" #n "\n\t"
#define STOREX(n) "movdqa %%xmm" #n ", " #n "*32(%[out])\n\t"
#define ALL(M)                                                                     \
	M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) \
	M(15)
#define CLOBBERS                                                                     \
	"memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
		"xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	int avx = __builtin_cpu_supports("avx") != 0;
	for (int r = 0; r < 16; r++)
		for (int b = 0; b < 32; b++)
			in[r][b] = (uint8_t)(r * 37 + b * 11 + 1);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	uint32_t mxcsr_in = 0x1f80 | 0x6000, mxcsr_out = 0;

	wl_ready("avx=%d", avx);
	if (avx) {
		__asm__ volatile("ldmxcsr %[mi]\n\t" ALL(LOADY) "1: pause\n\t"
				 "cmpl $0, %[flag]\n\t"
				 "je 1b\n\t" ALL(STOREY) "stmxcsr %[mo]\n\t"
				 "vzeroupper\n\t"
				 : [mo] "=m"(mxcsr_out)
				 : [in] "r"(in), [out] "r"(out), [flag] "m"(flag),
				   [mi] "m"(mxcsr_in)
				 : CLOBBERS);
	} else {
		__asm__ volatile("ldmxcsr %[mi]\n\t" ALL(LOADX) "1: pause\n\t"
				 "cmpl $0, %[flag]\n\t"
				 "je 1b\n\t" ALL(STOREX) "stmxcsr %[mo]\n\t"
				 : [mo] "=m"(mxcsr_out)
				 : [in] "r"(in), [out] "r"(out), [flag] "m"(flag),
				   [mi] "m"(mxcsr_in)
				 : CLOBBERS);
	}
	uint32_t def = 0x1f80;
	__asm__ volatile("ldmxcsr %0" ::"m"(def));

	int width = avx ? 32 : 16;
	for (int r = 0; r < 16; r++)
		for (int b = 0; b < width; b++)
			if (in[r][b] != out[r][b])
				wl_fail("%s%d byte %d is %#x, was %#x", avx ? "ymm" : "xmm", r, b,
					out[r][b], in[r][b]);
	if ((mxcsr_out & 0xffc0) != (mxcsr_in & 0xffc0))
		wl_fail("mxcsr %#x, was %#x", mxcsr_out, mxcsr_in);
	wl_pass("%s registers=16 mxcsr=%#x", avx ? "avx" : "sse-only", mxcsr_out);
}
