// libFuzzer target: systemd's environment as the pool reads it: NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID, three NUL-separated parts of the input.

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <supervise.hpp>
#include <vector>

#include "tests/fuzz/fuzz_input.hpp"

namespace {

using fuzz_input::require;
using notifier = supervise::detail::systemd_notifier;

// The pid the parser is told it runs as; a fixed one keeps runs reproducible.
constexpr pid_t self = 4242;

bool all_digits(const std::string& text) {
    if (text.empty()) return false;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

void check_address(const std::string& text) {
    sockaddr_un address{};
    socklen_t size = 0;
    if (!notifier::parse_address(text, address, size)) return;
    require(text.size() >= 2 && (text[0] == '/' || text[0] == '@'), "accepted a bad address");
    require(size > offsetof(sockaddr_un, sun_path) && size <= sizeof address, "address size");
    require(address.sun_family == AF_UNIX, "address family");
    const std::size_t length = size - offsetof(sockaddr_un, sun_path);
    require(length == text.size(), "address length");
    require(std::string_view(address.sun_path + 1, length - 1) == std::string_view(text).substr(1),
            "address bytes");
    require(address.sun_path[0] == (text[0] == '@' ? '\0' : '/'), "abstract marker");
}

void check_watchdog(const std::string& usec, const std::string* pid) {
    const std::int64_t ms =
        notifier::parse_watchdog_ms(usec.c_str(), pid ? pid->c_str() : nullptr, self);
    require(ms >= 0, "negative keep-alive period");
    if (ms == 0) return;
    // Accepted: strictly digits, meant for us, and exactly half the timeout in ms.
    require(all_digits(usec), "accepted a WATCHDOG_USEC that is not a number");
    require(pid == nullptr ||
                (all_digits(*pid) && std::stoull(*pid) == static_cast<unsigned long long>(self)),
            "accepted a WATCHDOG_PID that is not ours");
    require(static_cast<unsigned long long>(ms) == std::stoull(usec) / 2000, "period is not half");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::vector<std::string> parts = fuzz_input::split_at_nul(data, size, 3);
    check_address(parts[0]);
    if (parts.size() >= 2) {
        check_watchdog(parts[1], parts.size() >= 3 ? &parts[2] : nullptr);
        check_watchdog(parts[1], nullptr);
    }
    return 0;
}
