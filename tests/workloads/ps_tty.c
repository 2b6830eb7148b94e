/* ps_tty CTL: an interactive program on a terminal. Puts itself in a group of its own,
 * prints "READY <pid>" and "prompt>", then echoes every line it reads from stdin as
 * "echo: <line>" (to stdout, the terminal) until end of input. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	setpgid(0, 0);
	wl_ready("tty=%s", ttyname(0) ? ttyname(0) : "none");
	char line[1024];
	for (;;) {
		printf("prompt>\n");
		if (!fgets(line, sizeof line, stdin))
			break;
		line[strcspn(line, "\n")] = 0;
		printf("echo: %s\n", line);
	}
	return 0;
}
