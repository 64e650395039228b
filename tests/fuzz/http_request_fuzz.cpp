// libFuzzer target: the example daemon's request-head parser on arbitrary
// bytes, as a client would send them. Beyond "no crash, no sanitizer report",
// it checks what the daemon relies on when a head is accepted.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "examples/daemon/http_request.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using fuzz_input::require;

// `part` is a view into `whole` (not a copy somewhere else).
bool inside(std::string_view part, std::string_view whole) {
    return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void check(std::string_view received) {
    const std::size_t end = http::head_end(received);
    if (end == std::string_view::npos) {
        require(received.find("\r\n\r\n") == std::string_view::npos,
                "head_end missed a blank line");
        return;
    }
    require(end >= 4 && end <= received.size(), "head_end out of range");
    const std::string_view head = received.substr(0, end);
    require(head.substr(end - 4) == "\r\n\r\n", "head does not end with the blank line");

    const http::parse_result parsed = http::parse_request(head);
    if (parsed.status != http::parse_status::ok) return;
    const http::request& req = parsed.req;
    require(inside(req.method, head) && inside(req.target, head) && inside(req.version, head) &&
                inside(req.path, head),
            "a view points outside the head");
    require(!req.method.empty() && http::detail::is_token(req.method), "method is not a token");
    require(!req.target.empty() && req.target.front() == '/', "target does not start with '/'");
    require(req.target.substr(0, req.path.size()) == req.path, "path is not a prefix of target");
    require(req.path.find('?') == std::string_view::npos, "path holds the query");
    require(req.version.size() == 8 && req.version.substr(0, 7) == "HTTP/1.", "bad version");
    require(req.header_fields <= http::max_header_fields, "too many header fields accepted");
    // Nothing a proxy could read as a line end or a separator may be accepted in the
    // request line.
    const std::string_view line = head.substr(0, head.find("\r\n"));
    require(line.find_first_of(std::string_view("\r\n\t\0", 4)) == std::string_view::npos,
            "control character in an accepted request line");
    for (const char c : req.target) {
        const auto u = static_cast<unsigned char>(c);
        require(u > 0x20 && u < 0x7f, "a target byte that is not visible ASCII");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
