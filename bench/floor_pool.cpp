// floor_pool: the floor of the shutdown benchmarks, with no library at all.
//
// The least a master can do and still behave like the seed: fork N children
// that sleep in sigsuspend(); on SIGTERM/SIGINT, or when a child dies, send
// SIGTERM to every live child, reap them all, exit (0 for a requested stop,
// 1 for a dead child). No logging, no statistics, no hooks, no SIGKILL
// escalation, no error handling beyond the minimum: it exists to show how
// much of a measured shutdown is the kernel's work of ending processes on
// this machine, so the other sides can be read against it.
//
//   floor_pool --workers 14 --ready-fd 3

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
    int workers = 0;
    int ready_fd = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--workers") == 0) workers = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--ready-fd") == 0) ready_fd = std::atoi(argv[i + 1]);
    }
    if (workers < 1) {
        std::fprintf(stderr, "usage: floor_pool --workers N [--ready-fd FD]\n");
        return 2;
    }

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGCHLD);
    sigprocmask(SIG_BLOCK, &stop, nullptr);

    std::vector<pid_t> children;
    for (int i = 0; i < workers; ++i) {
        const pid_t pid = fork();
        if (pid < 0) {
            std::perror("floor_pool: fork");
            break;
        }
        if (pid == 0) {
            // Default dispositions: SIGTERM ends the child inside the kernel.
            sigset_t none;
            sigemptyset(&none);
            for (;;) sigsuspend(&none);
        }
        children.push_back(pid);
    }
    if (ready_fd >= 0) {
        const char byte = 'R';
        if (write(ready_fd, &byte, 1) != 1) std::perror("floor_pool: write");
        close(ready_fd);
    }

    int status = 0;
    siginfo_t info;
    for (;;) {
        if (sigwaitinfo(&stop, &info) < 0) continue;
        if (info.si_signo != SIGCHLD) break;
        const pid_t dead = waitpid(-1, nullptr, WNOHANG);
        if (dead > 0) {
            for (pid_t& pid : children) {
                if (pid == dead) pid = 0;
            }
            status = 1;
            break;
        }
    }
    for (const pid_t pid : children) {
        if (pid > 0) kill(pid, SIGTERM);
    }
    while (wait(nullptr) > 0 || errno == EINTR) {
    }
    return status;
}
