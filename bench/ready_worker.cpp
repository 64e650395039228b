// ready_worker: the command that supervisors of commands run in the benchmarks
// (supervise-exec, runsv, s6-supervise, supervisord, tini; bench/README.md).
//
//   ready_worker FIFO
//
// Writes one byte to FIFO (a named pipe the driver holds open) as the first
// thing it does, so the driver knows this copy runs, then sleeps in
// sigsuspend() with the dispositions it was given: SIGTERM ends it inside the
// kernel, as the floor's children. If nobody reads FIFO the byte is skipped.

#include <fcntl.h>
#include <unistd.h>

#include <csignal>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const int fd = ::open(argv[1], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        const char byte = 'B';
        if (::write(fd, &byte, 1) != 1) return 1;
        ::close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    for (;;) ::sigsuspend(&none);
}
