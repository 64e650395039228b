// http_request.hpp: the example daemon's reading of an HTTP/1.1 request head.
//
// This is the one place where the daemon looks at bytes a client chose, so it
// is kept apart from the sockets and the pool: a plain function of a string,
// which tests/fuzz feeds with every input a fuzzer can think of and
// tests/fuzz:parsers_test with the cases that matter (RFC 9112, sections 2-5).
//
// What it accepts is deliberately narrow: CRLF line ends only (a bare LF or a
// lone CR is refused as soon as it arrives, see scan_head), a request line
// "METHOD SP /TARGET SP HTTP/1.x", then header fields "Name: value" with a
// token for a name. Everything else is a 400, never a guess: a server that
// reads a malformed head one way while a proxy in front reads it another is
// how request smuggling starts.

#ifndef SUPERVISE_EXAMPLES_HTTP_REQUEST_HPP
#define SUPERVISE_EXAMPLES_HTTP_REQUEST_HPP

#include <cstddef>
#include <string_view>

namespace http {

// A request head (request line, header fields and the blank line) larger than
// this gets 431 (Request Header Fields Too Large).
inline constexpr std::size_t max_request_head = std::size_t{8} * 1024;
// At most this many header fields; more is a 431 too.
inline constexpr std::size_t max_header_fields = 100;

// The length of the head at the start of `received`, blank line included, or
// npos while the blank line has not arrived yet.
inline std::size_t head_end(std::string_view received) noexcept {
    const std::size_t blank = received.find("\r\n\r\n");
    return blank == std::string_view::npos ? std::string_view::npos : blank + 4;
}

// Where a head being received stands (scan_head).
enum class head_state {
    incomplete,    // no blank line yet, nothing wrong so far
    complete,      // `length` bytes, blank line included
    bad_line_end,  // a LF without its CR, or a CR without its LF: 400 at once
    too_large,     // no blank line within max_request_head: 431
};

struct head_scan {
    head_state state = head_state::incomplete;
    std::size_t length = 0;   // complete: the head's length
    std::size_t scanned = 0;  // incomplete: pass it back on the next call
};

// Looks at a head as it arrives, each byte once: `received` is everything
// received since the head began, `scanned` what the previous call returned
// (0 the first time). The verdict is the same whatever pieces the head
// arrived in (tests/fuzz checks this against head_end on whole inputs).
inline head_scan scan_head(std::string_view received, std::size_t scanned) noexcept {
    head_scan result;
    // The byte before `scanned` is looked at again: a CR at the end of the
    // last piece is judged by the byte that follows it.
    for (std::size_t i = scanned > 0 ? scanned - 1 : 0; i < received.size(); ++i) {
        if (i >= max_request_head) {
            result.state = head_state::too_large;
            return result;
        }
        const char c = received[i];
        if (c == '\r' && i + 1 < received.size() && received[i + 1] != '\n') {
            result.state = head_state::bad_line_end;
            return result;
        }
        if (c != '\n') continue;
        if (i == 0 || received[i - 1] != '\r') {
            result.state = head_state::bad_line_end;
            return result;
        }
        if (i >= 3 && received.substr(i - 3, 4) == "\r\n\r\n") {
            result.state = head_state::complete;
            result.length = i + 1;
            return result;
        }
    }
    // A full head's worth without its end: the client's reply can come now.
    if (received.size() >= max_request_head) result.state = head_state::too_large;
    result.scanned = received.size();
    return result;
}

// A well-formed request head; the views point into the text that was parsed.
struct request {
    std::string_view method;
    std::string_view target;   // starts with '/'
    std::string_view version;  // "HTTP/1." and one digit
    std::string_view path;     // target up to the first '?'
    std::size_t header_fields = 0;
    // Content-Length other than 0, or any Transfer-Encoding: a body follows
    // the head (the daemon reads none, so it closes after its answer).
    bool has_body = false;
    // HTTP/1.1 without "Connection: close", or HTTP/1.0 with
    // "Connection: keep-alive" (RFC 9112, section 9.3).
    bool keep_alive = false;
};

enum class parse_status {
    ok,
    bad_request_line,  // 400
    bad_header,        // 400
    too_many_headers,  // 431
};

struct parse_result {
    parse_status status = parse_status::bad_request_line;
    request req;
};

namespace detail {

// tchar of RFC 9110, section 5.6.2: what a method and a field name are made of.
inline constexpr bool is_token_char(char c) noexcept {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    for (const char special : std::string_view("!#$%&'*+-.^_`|~")) {
        if (c == special) return true;
    }
    return false;
}

inline constexpr bool is_token(std::string_view text) noexcept {
    if (text.empty()) return false;
    for (const char c : text) {
        if (!is_token_char(c)) return false;
    }
    return true;
}

// A field value may hold visible characters, bytes above 0x7f (obs-text),
// spaces and tabs; control characters (NUL, a lone CR or LF, DEL) never.
inline constexpr bool is_visible(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
}

inline constexpr bool is_field_value(std::string_view text) noexcept {
    for (const char c : text) {
        if (!is_visible(c) && c != ' ' && c != '\t') return false;
    }
    return true;
}

// A request target is a URI: visible ASCII only (RFC 3986 percent-encodes
// everything else).
inline constexpr bool is_target(std::string_view text) noexcept {
    if (text.empty() || text.front() != '/') return false;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return false;
    }
    return true;
}

// "HTTP/1.0", "HTTP/1.1": a later 1.x is read as 1.1 (RFC 9110, section 2.5).
inline constexpr bool is_http1_version(std::string_view version) noexcept {
    return version.size() == 8 && version.substr(0, 7) == "HTTP/1." && version[7] >= '0' &&
           version[7] <= '9';
}

inline parse_status parse_request_line(std::string_view line, request& req) noexcept {
    const std::size_t space1 = line.find(' ');
    if (space1 == std::string_view::npos) return parse_status::bad_request_line;
    const std::size_t space2 = line.find(' ', space1 + 1);
    if (space2 == std::string_view::npos || line.find(' ', space2 + 1) != std::string_view::npos) {
        return parse_status::bad_request_line;
    }
    req.method = line.substr(0, space1);
    req.target = line.substr(space1 + 1, space2 - space1 - 1);
    req.version = line.substr(space2 + 1);
    if (!is_token(req.method) || !is_target(req.target) || !is_http1_version(req.version)) {
        return parse_status::bad_request_line;
    }
    req.path = req.target.substr(0, req.target.find('?'));
    return parse_status::ok;
}

// "Name: value", optional whitespace around the value. No whitespace between
// the name and the colon, and no line folding (a line starting with SP or
// HTAB): RFC 9112 says a server must reject both.
inline bool is_header_field(std::string_view line) noexcept {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    return is_token(line.substr(0, colon)) && is_field_value(line.substr(colon + 1));
}

inline constexpr char lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive: field names and the Connection options are.
inline constexpr bool equal_nocase(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

inline constexpr std::string_view trimmed(std::string_view text) noexcept {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// Whether a comma-separated field value lists `option` ("close",
// "keep-alive" in Connection).
inline constexpr bool lists(std::string_view value, std::string_view option) noexcept {
    while (!value.empty()) {
        const std::size_t comma = value.find(',');
        if (equal_nocase(trimmed(value.substr(0, comma)), option)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

// What the daemon needs from one well-formed field line: whether a body
// follows, and what the client said about the connection.
struct connection_fields {
    bool close = false;
    bool keep_alive = false;
};

inline void read_field(std::string_view line, request& req, connection_fields& conn) noexcept {
    const std::size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trimmed(line.substr(colon + 1));
    if (equal_nocase(name, "content-length")) {
        if (value != "0") req.has_body = true;
    } else if (equal_nocase(name, "transfer-encoding")) {
        req.has_body = true;
    } else if (equal_nocase(name, "connection")) {
        conn.close = conn.close || lists(value, "close");
        conn.keep_alive = conn.keep_alive || lists(value, "keep-alive");
    }
}

}  // namespace detail

// Parses a whole head as head_end() delimits it: `head` must end with the
// blank line ("\r\n\r\n"); anything else is a bad request.
inline parse_result parse_request(std::string_view head) noexcept {
    parse_result result;
    if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n") return result;
    // Every line of the head without its CRLF; the last one is the blank line.
    const std::string_view lines = head.substr(0, head.size() - 2);
    std::size_t begin = 0;
    bool first = true;
    detail::connection_fields conn;
    while (begin < lines.size()) {
        std::size_t end = lines.find("\r\n", begin);
        if (end == std::string_view::npos) end = lines.size();  // not reached: lines ends in CRLF
        const std::string_view line = lines.substr(begin, end - begin);
        begin = end + 2;
        // A CR or LF other than as the CRLF pair would be a line end to one
        // reader and part of a line to another.
        if (line.find_first_of("\r\n") != std::string_view::npos) {
            result.status = first ? parse_status::bad_request_line : parse_status::bad_header;
            return result;
        }
        if (first) {
            first = false;
            result.status = detail::parse_request_line(line, result.req);
            if (result.status != parse_status::ok) return result;
            continue;
        }
        if (!detail::is_header_field(line)) {
            result.status = parse_status::bad_header;
            return result;
        }
        if (++result.req.header_fields > max_header_fields) {
            result.status = parse_status::too_many_headers;
            return result;
        }
        detail::read_field(line, result.req, conn);
    }
    result.req.keep_alive = !conn.close && (result.req.version != "HTTP/1.0" || conn.keep_alive);
    return result;
}

}  // namespace http

#endif  // SUPERVISE_EXAMPLES_HTTP_REQUEST_HPP
