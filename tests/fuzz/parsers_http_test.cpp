// The example daemon's request-head parser (examples/daemon/http_request.hpp):
// what it accepts and what it refuses, with RFC 9112's reasons.

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "examples/daemon/http_request.hpp"

namespace {

http::parse_status status_of(std::string_view head) { return http::parse_request(head).status; }

}  // namespace

TEST_CASE("http: head_end finds the blank line, and only a CRLF one") {
    CHECK(http::head_end("GET / HTTP/1.1\r\n\r\n") == 18);
    CHECK(http::head_end("GET / HTTP/1.1\r\n\r\nbody") == 18);
    CHECK(http::head_end("GET / HTTP/1.1\r\nHost: x\r\n") == std::string_view::npos);
    CHECK(http::head_end("GET / HTTP/1.1\n\n") == std::string_view::npos);
    CHECK(http::head_end("") == std::string_view::npos);
    CHECK(http::head_end("\r\n\r\n") == 4);
}

TEST_CASE("http: a well-formed head is parsed into views of itself") {
    const std::string head = "GET /a/b?x=1&y HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
    const http::parse_result r = http::parse_request(head);
    REQUIRE(r.status == http::parse_status::ok);
    CHECK(r.req.method == "GET");
    CHECK(r.req.target == "/a/b?x=1&y");
    CHECK(r.req.path == "/a/b");
    CHECK(r.req.version == "HTTP/1.1");
    CHECK(r.req.header_fields == 2);
    CHECK(r.req.method.data() == head.data());
}

TEST_CASE("http: what is accepted") {
    CHECK(status_of("GET / HTTP/1.0\r\n\r\n") == http::parse_status::ok);
    CHECK(status_of("GET / HTTP/1.9\r\n\r\n") == http::parse_status::ok);  // read as 1.1
    CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == http::parse_status::ok);
    CHECK(status_of("GET / HTTP/1.1\r\nX-Empty:\r\n\r\n") == http::parse_status::ok);
    CHECK(status_of("GET / HTTP/1.1\r\nX: \t v a l \t\r\n\r\n") == http::parse_status::ok);
    CHECK(status_of("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n") == http::parse_status::ok);
    CHECK(status_of("GET / HTTP/1.1\r\nX: a:b:c\r\n\r\n") == http::parse_status::ok);
}

TEST_CASE("http: a malformed request line is a 400") {
    for (const std::string_view head :
         {"garbage\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n",
          "GET nowhere HTTP/1.1\r\n\r\n", "GET / SPDY/3\r\n\r\n", "GET / XTTP/1.1\r\n\r\n",
          "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.x\r\n\r\n", "GET / HTTP/1.10\r\n\r\n",
          " GET / HTTP/1.1\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n",
          "G(T / HTTP/1.1\r\n\r\n", "GET /\x7f HTTP/1.1\r\n\r\n", "GET /\t HTTP/1.1\r\n\r\n",
          "GET / HTTP/1.1\r\r\n\r\n", "GET /\rx HTTP/1.1\r\n\r\n", "\r\n\r\n",
          "GET  HTTP/1.1\r\n\r\n", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
          // The asterisk form (OPTIONS *) and absolute URIs are for proxies, not for us.
          "OPTIONS * HTTP/1.1\r\n\r\n", "GET http://host/ HTTP/1.1\r\n\r\n"}) {
        CAPTURE(head);
        CHECK(status_of(head) == http::parse_status::bad_request_line);
    }
    // A NUL in the target: a C string would end there, a std::string does not.
    CHECK(status_of(std::string_view("GET /\0x HTTP/1.1\r\n\r\n", 20)) ==
          http::parse_status::bad_request_line);
}

TEST_CASE("http: a malformed header field is a 400 (RFC 9112: no folding, no space before ':')") {
    for (const std::string_view head :
         {"GET / HTTP/1.1\r\n Folded: x\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n\tcontinued\r\n\r\n",
          "GET / HTTP/1.1\r\nName : value\r\n\r\n", "GET / HTTP/1.1\r\nno colon\r\n\r\n",
          "GET / HTTP/1.1\r\n: no name\r\n\r\n", "GET / HTTP/1.1\r\nBad(name): x\r\n\r\n",
          "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "GET / HTTP/1.1\r\nX: a\nb\r\n\r\n",
          "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", "GET / HTTP/1.1\r\nX: \x7f\r\n\r\n",
          // A blank line inside: a head ends at the first one (head_end), not later.
          "GET / HTTP/1.1\r\n\r\nX: y\r\n\r\n"}) {
        CAPTURE(head);
        CHECK(status_of(head) == http::parse_status::bad_header);
    }
}

TEST_CASE("http: a head that does not end with the blank line is refused") {
    CHECK(status_of("GET / HTTP/1.1\r\n") == http::parse_status::bad_request_line);
    CHECK(status_of("GET / HTTP/1.1\n\n") == http::parse_status::bad_request_line);
    CHECK(status_of("") == http::parse_status::bad_request_line);
}

TEST_CASE("http: more than max_header_fields fields is a 431") {
    std::string head = "GET / HTTP/1.1\r\n";
    for (std::size_t i = 0; i < http::max_header_fields; ++i) head += "X: y\r\n";
    CHECK(http::parse_request(head + "\r\n").status == http::parse_status::ok);
    head += "X: y\r\n\r\n";
    CHECK(http::parse_request(head).status == http::parse_status::too_many_headers);
}

namespace {
http::head_scan scan_in_pieces(std::string_view received, std::size_t piece) {
    http::head_scan scan;
    for (std::size_t have = 0; have < received.size();) {
        have = std::min(received.size(), have + piece);
        scan = http::scan_head(received.substr(0, have), scan.scanned);
        if (scan.state != http::head_state::incomplete) break;
    }
    return scan;
}
}  // namespace

TEST_CASE("http: scan_head finds the head as it arrives, in any pieces") {
    const std::string_view two = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    for (const std::size_t piece : {1, 2, 3, 4, 5, 64}) {
        CAPTURE(piece);
        const http::head_scan scan = scan_in_pieces(two, piece);
        CHECK(scan.state == http::head_state::complete);
        CHECK(scan.length == http::head_end(two));  // the first head only
        CHECK(scan_in_pieces("GET / HTTP/1.1\r\nHost", piece).state ==
              http::head_state::incomplete);
    }
    // A CR at the end of a piece is judged by the byte after it.
    CHECK(http::scan_head("GET / HTTP/1.1\r", 0).state == http::head_state::incomplete);
    const http::head_scan half = http::scan_head("GET / HTTP/1.1\r", 0);
    CHECK(http::scan_head("GET / HTTP/1.1\rX", half.scanned).state ==
          http::head_state::bad_line_end);
}

TEST_CASE("http: scan_head refuses a bare LF or a lone CR at once, not at the blank line") {
    for (const std::string_view start : {"GET / HTTP/1.1\n", "\n", "GET / HTTP/1.1\r\nA: b\n",
                                         "GET / HTTP/1.1\r\nA: b\rc", "GET / HTTP/1.1\r\r\n"}) {
        CAPTURE(start);
        CHECK(http::scan_head(start, 0).state == http::head_state::bad_line_end);
        CHECK(scan_in_pieces(start, 1).state == http::head_state::bad_line_end);
    }
}

TEST_CASE("http: scan_head gives up at max_request_head without a blank line") {
    std::string head = "GET / HTTP/1.1\r\nX: ";
    head += std::string(http::max_request_head - head.size() - 4, 'a');
    CHECK(http::scan_head(head + "\r\n\r\n", 0).state == http::head_state::complete);
    CHECK(http::scan_head(head + "aa", 0).state == http::head_state::incomplete);
    CHECK(http::scan_head(head + "aaaa", 0).state == http::head_state::too_large);
    CHECK(http::scan_head(head + "a\r\n\r\n", 0).state == http::head_state::too_large);
    CHECK(scan_in_pieces(head + "aaaa", 3).state == http::head_state::too_large);
}

TEST_CASE("http: keep-alive and bodies, from the version and the fields (RFC 9112 9.3, 6.3)") {
    const auto req = [](std::string_view head) {
        const http::parse_result parsed = http::parse_request(head);
        REQUIRE(parsed.status == http::parse_status::ok);
        return parsed.req;
    };
    CHECK(req("GET / HTTP/1.1\r\n\r\n").keep_alive);
    CHECK_FALSE(req("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    CHECK_FALSE(req("GET / HTTP/1.1\r\nconnection:  Upgrade, CLOSE \r\n\r\n").keep_alive);
    CHECK(req("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n").keep_alive);
    CHECK_FALSE(req("GET / HTTP/1.0\r\n\r\n").keep_alive);
    CHECK(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    CHECK_FALSE(req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);

    CHECK_FALSE(req("GET / HTTP/1.1\r\n\r\n").has_body);
    CHECK_FALSE(req("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
    CHECK(req("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body);
    CHECK(req("GET / HTTP/1.1\r\ncontent-length: 00\r\n\r\n").has_body);
    CHECK(req("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
}
