// libFuzzer target: a listener's address and name as options::listeners and
// systemd's LISTEN_FDNAMES give them (docs/listeners.md). Beyond "no crash,
// no sanitizer report": an address accepted is one the kernel can bind as
// given, and it reads back as itself.

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <supervise.hpp>

#include "tests/fuzz/fuzz_input.hpp"

namespace {

using fuzz_input::require;
namespace detail = supervise::detail;

void check_address(std::string_view text) {
    detail::socket_address parsed;
    const std::string why = detail::parse_listen_address(text, parsed);
    if (!why.empty()) {
        require(parsed.family == AF_UNSPEC, "a refused address left a family behind");
        return;
    }
    require(parsed.size > 0 && parsed.size <= sizeof parsed.storage, "address size");
    require(parsed.storage.ss_family == parsed.family, "family and storage disagree");
    const bool unix_socket = parsed.family == AF_UNIX;
    require(unix_socket || parsed.family == AF_INET || parsed.family == AF_INET6, "family");
    require(unix_socket == (text.substr(0, 5) == "unix:"), "unix: prefix and family disagree");
    require(parsed.path.empty() || parsed.path == text.substr(5), "socket file path");
    // What listening_socket::address will say names the same address: parsed
    // again, the same bytes (an IPv4 "*" reads back as 0.0.0.0).
    const std::string described = detail::describe_address(parsed.storage, parsed.size);
    detail::socket_address again;
    require(detail::parse_listen_address(described, again).empty(),
            "the address as described does not parse");
    require(again.family == parsed.family && again.size == parsed.size &&
                std::memcmp(&again.storage, &parsed.storage, parsed.size) == 0,
            "the address as described is another address");
}

void check_name(std::string_view name) {
    if (!detail::valid_listener_name(name)) return;
    require(!name.empty() && name.size() <= 255, "name length");
    require(name.find(':') == std::string_view::npos, "':' would split LISTEN_FDNAMES");
    for (const char c : name) require(c >= 0x20 && c < 0x7f, "a control or non-ASCII byte");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_address(text);
    check_name(text);
    return 0;
}
