// listen_flag.hpp: --listen HOST:PORT as the example servers read it.
//
// The pool binds its listeners from numeric addresses only (docs/listeners.md:
// a constructor that promises to start nothing must not wait on a resolver),
// so the programs resolve the host name of --listen themselves, once, before
// the pool exists. A bad value throws pool_choice::usage_error.

#ifndef SUPERVISE_EXAMPLES_LISTEN_FLAG_HPP
#define SUPERVISE_EXAMPLES_LISTEN_FLAG_HPP

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "examples/common/pool_choice.hpp"

namespace listen_flag {

struct address {
    std::string host = "127.0.0.1";
    int port = 8080;
};

// "127.0.0.1:8080", "localhost:0", "[::1]:8080". The port is split off at the
// last colon; brackets keep the colons of an IPv6 address out of the way.
inline address parse(std::string_view text) {
    std::string_view host;
    const std::size_t colon = text.rfind(':');
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 != colon) {
            throw pool_choice::usage_error("--listen: expected [IPV6]:PORT, got '" +
                                           std::string(text) + "'");
        }
        host = text.substr(1, close - 1);
    } else {
        if (colon == std::string_view::npos) {
            throw pool_choice::usage_error("--listen: expected HOST:PORT, got '" +
                                           std::string(text) + "'");
        }
        host = text.substr(0, colon);
    }
    if (host.empty()) {
        throw pool_choice::usage_error("--listen: missing host in '" + std::string(text) + "'");
    }
    address result;
    result.host = std::string(host);
    result.port = static_cast<int>(
        pool_choice::parse_number("--listen: port", text.substr(colon + 1), 0, 65535));
    return result;
}

// The first address the host resolves to, as a listener_spec's address:
// "127.0.0.1:8080" or "[::1]:8080".
inline std::string numeric(const address& where) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(where.port);
    if (const int rc = ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
        throw pool_choice::usage_error("--listen: cannot resolve '" + where.host +
                                       "': " + ::gai_strerror(rc));
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
    char host[INET6_ADDRSTRLEN] = "";
    if (found->ai_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(found->ai_addr);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        return "[" + std::string(host) + "]:" + port;
    }
    const auto* in = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + port;
}

// Started by systemd's socket activation (sd_listen_fds(3)): LISTEN_PID is
// this process. The pool takes the sockets and checks them; this only says
// whether --listen's default applies.
inline bool socket_activated() {
    const char* pid = std::getenv("LISTEN_PID");
    return pid != nullptr && std::getenv("LISTEN_FDS") != nullptr &&
           std::to_string(::getpid()) == pid;
}

}  // namespace listen_flag

#endif  // SUPERVISE_EXAMPLES_LISTEN_FLAG_HPP
