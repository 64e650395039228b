// libFuzzer target: the example daemon's request-head parser on arbitrary
// bytes, as a client would send them. Beyond "no crash, no sanitizer report",
// it checks what the daemon relies on when a head is accepted.

#include <algorithm>
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

// The worker scans a head as it arrives (http::scan_head): its verdict must
// not depend on the pieces the head came in, and must agree with head_end.
void check_scan(std::string_view received) {
    const http::head_scan whole = http::scan_head(received, 0);
    for (const std::size_t piece :
         {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{500}}) {
        http::head_scan scan;
        std::size_t have = 0;
        while (have < received.size()) {
            have = std::min(received.size(), have + piece);
            scan = http::scan_head(received.substr(0, have), scan.scanned);
            if (scan.state != http::head_state::incomplete) break;
        }
        if (received.empty()) scan = http::scan_head(received, 0);
        require(scan.state == whole.state && scan.length == whole.length,
                "scan_head's verdict depends on the pieces");
    }
    switch (whole.state) {
        case http::head_state::complete:
            require(whole.length == http::head_end(received), "scan_head and head_end disagree");
            require(whole.length <= http::max_request_head, "a head above the limit accepted");
            break;
        case http::head_state::incomplete:
            require(http::head_end(received) == std::string_view::npos,
                    "scan_head missed a blank line");
            require(received.size() < http::max_request_head, "no verdict on a full head");
            break;
        case http::head_state::bad_line_end:
            require(received.find('\n') != std::string_view::npos ||
                        received.find('\r') != std::string_view::npos,
                    "a bad line end without CR or LF");
            break;
        case http::head_state::too_large:
            require(received.size() >= http::max_request_head, "too large below the limit");
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check(std::string_view(reinterpret_cast<const char*>(data), size));
    check_scan(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
