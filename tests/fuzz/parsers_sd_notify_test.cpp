// systemd's environment as the pool reads it (detail::systemd_notifier):
// NOTIFY_SOCKET as an address, WATCHDOG_USEC and WATCHDOG_PID as a keep-alive
// period. Strict: what is not exactly right means no notifications or no
// keep-alives, never a guess such as atoll's.

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <supervise.hpp>

namespace {

using notifier = supervise::detail::systemd_notifier;

bool address_ok(std::string_view text) {
    sockaddr_un address{};
    socklen_t size = 0;
    return notifier::parse_address(text, address, size);
}

}  // namespace

TEST_CASE("sd_notify: NOTIFY_SOCKET, a path or an abstract name") {
    sockaddr_un address{};
    socklen_t size = 0;
    REQUIRE(notifier::parse_address("/run/systemd/notify", address, size));
    CHECK(address.sun_family == AF_UNIX);
    CHECK(std::string(address.sun_path) == "/run/systemd/notify");
    CHECK(size == offsetof(sockaddr_un, sun_path) + 19);

    REQUIRE(notifier::parse_address("@svc/notify", address, size));
    CHECK(address.sun_path[0] == '\0');  // the abstract namespace
    CHECK(std::string_view(address.sun_path + 1, 10) == "svc/notify");
    CHECK(size == offsetof(sockaddr_un, sun_path) + 11);
}

TEST_CASE("sd_notify: a NOTIFY_SOCKET that is not an address means no notifications") {
    CHECK_FALSE(address_ok(""));
    CHECK_FALSE(address_ok("@"));  // an empty abstract name
    CHECK_FALSE(address_ok("/"));
    CHECK_FALSE(address_ok("run/notify"));
    CHECK_FALSE(address_ok("vsock:2:1234"));
    CHECK_FALSE(address_ok(std::string_view("/run/a\0b", 8)));
    const std::size_t room = sizeof(sockaddr_un{}.sun_path);
    CHECK(address_ok("/" + std::string(room - 2, 'x')));  // the longest that fits
    CHECK_FALSE(address_ok("/" + std::string(room - 1, 'x')));
}

TEST_CASE("sd_notify: WATCHDOG_USEC gives a keep-alive every half period") {
    CHECK(notifier::parse_watchdog_ms("30000000", nullptr, 42) == 15000);
    CHECK(notifier::parse_watchdog_ms("30000000", "42", 42) == 15000);
    CHECK(notifier::parse_watchdog_ms("2000", nullptr, 42) == 1);  // the shortest period
    CHECK(notifier::parse_watchdog_ms("0002000", "0042", 42) == 1);
    CHECK(notifier::parse_watchdog_ms("18446744073709551614", nullptr, 42) ==
          static_cast<std::int64_t>(18446744073709551614ULL / 2000));
}

TEST_CASE("sd_notify: a bad or foreign watchdog means no keep-alives") {
    CHECK(notifier::parse_watchdog_ms(nullptr, nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("0", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("1999", nullptr, 42) == 0);  // a period under 1 ms
    CHECK(notifier::parse_watchdog_ms("-30000000", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("+30000000", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms(" 30000000", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("30000000 ", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("30s", nullptr, 42) == 0);
    CHECK(notifier::parse_watchdog_ms("18446744073709551615", nullptr, 42) == 0);  // infinity
    CHECK(notifier::parse_watchdog_ms("18446744073709551616", nullptr, 42) == 0);  // overflow
    CHECK(notifier::parse_watchdog_ms("99999999999999999999999", nullptr, 42) == 0);
    // Meant for another process (a parent that exported it to us by mistake).
    CHECK(notifier::parse_watchdog_ms("30000000", "43", 42) == 0);
    CHECK(notifier::parse_watchdog_ms("30000000", "", 42) == 0);
    CHECK(notifier::parse_watchdog_ms("30000000", "42abc", 42) == 0);  // atol would say 42
    CHECK(notifier::parse_watchdog_ms("30000000", "18446744073709551658", 42) == 0);  // 2^64+42
    CHECK(notifier::parse_watchdog_ms("30000000", "-42", 42) == 0);
}
