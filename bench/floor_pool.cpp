// floor_pool: the floor of the benchmarks, with no library at all.
//
// The least a master can do and still behave like the seed: fork N children
// that sleep in sigsuspend(); on SIGTERM/SIGINT, or when a child dies, send
// SIGTERM to every live child, reap them all, exit (0 for a requested stop,
// 1 for a dead child). No logging, no statistics, no hooks, no SIGKILL
// escalation, no error handling beyond the minimum: it exists to show how
// much of a measured shutdown is the kernel's work of ending processes on
// this machine, so the other sides can be read against it.
//
// --respawn (the respawn benchmark): a child that dies is replaced at once by
// a new fork instead, and the new child writes one byte to the --ready-fd
// descriptor before it goes to sleep, as supervise's restarted workers do in
// bench/idle_pool.cpp. The master keeps that descriptor open for them.
//
//   floor_pool --workers 14 --ready-fd 3 [--respawn]

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

// The child's whole life: default dispositions, so SIGTERM ends it inside
// the kernel.
[[noreturn]] void child(int ready_fd, bool replacement) {
    if (replacement) {
        const char byte = 'B';
        if (write(ready_fd, &byte, 1) != 1) _exit(1);
    }
    sigset_t none;
    sigemptyset(&none);
    for (;;) sigsuspend(&none);
}

}  // namespace

int main(int argc, char** argv) {
    int workers = 0;
    int ready_fd = -1;
    bool respawn = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = std::atoi(argv[++i]);
        } else if (std::strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc) {
            ready_fd = std::atoi(argv[++i]);
        } else if (std::strcmp(argv[i], "--respawn") == 0) {
            respawn = true;
        } else {
            workers = 0;
            break;
        }
    }
    if (workers < 1 || (respawn && ready_fd < 0)) {
        std::fprintf(stderr, "usage: floor_pool --workers N [--ready-fd FD [--respawn]]\n");
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
        if (pid == 0) child(ready_fd, false);
        children.push_back(pid);
    }
    if (ready_fd >= 0) {
        const char byte = 'R';
        if (write(ready_fd, &byte, 1) != 1) std::perror("floor_pool: write");
        if (!respawn) close(ready_fd);
    }

    int status = 0;
    siginfo_t info;
    for (;;) {
        if (sigwaitinfo(&stop, &info) < 0) continue;
        if (info.si_signo != SIGCHLD) break;
        bool died = false;
        for (pid_t dead; (dead = waitpid(-1, nullptr, WNOHANG)) > 0;) {
            for (pid_t& pid : children) {
                if (pid != dead) continue;
                pid = 0;
                died = true;
                if (!respawn) continue;
                pid = fork();
                if (pid == 0) child(ready_fd, true);
                if (pid < 0) {
                    std::perror("floor_pool: fork");
                    pid = 0;
                    respawn = false;  // cannot replace it: stop as the seed does
                }
            }
        }
        if (died && !respawn) {
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
