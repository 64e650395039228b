// http_answers.hpp: the example servers' answers, as bytes.
//
// The daemon (examples/daemon/http_server.hpp) and the two event-loop
// examples (examples/asio, examples/libuv) answer the same requests the same
// way; what differs is their loop. The request head is read by
// examples/daemon/http_request.hpp.

#ifndef SUPERVISE_EXAMPLES_HTTP_ANSWERS_HPP
#define SUPERVISE_EXAMPLES_HTTP_ANSWERS_HPP

#include <string>
#include <string_view>

#include "examples/daemon/http_request.hpp"

namespace http {

inline const char* reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 431:
            return "Request Header Fields Too Large";
        case 503:
            return "Service Unavailable";
    }
    return "Internal Server Error";
}

// One answer appended to `out`. `connection` is the value of the Connection
// field: "close", "keep-alive" (an HTTP/1.0 client that asked for it) or none.
inline void append_response(std::string& out, int status, std::string_view body,
                            std::string_view connection, std::string_view extra_headers = {},
                            std::string_view content_type = "text/plain") {
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason_phrase(status);
    out += "\r\nContent-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
    out += extra_headers;
    if (!connection.empty()) {
        out += "Connection: ";
        out += connection;
        out += "\r\n";
    }
    out += "\r\n";
    out += body;
}

// The event-loop examples' requests: answers the complete heads at the
// front of `in`, in order, into `out`, and removes them. `hello` is GET /'s
// body. True when the last answer said Connection: close: the connection
// ends once `out` is sent, and nothing after it is read. A draining worker
// answers one more request, with Connection: close. Line ends are checked
// as they arrive (scan_head): a bare LF is refused at once.
inline bool answer_requests(std::string& in, std::string& out, bool draining,
                            std::string_view hello) {
    for (;;) {
        const head_scan scan = scan_head(in, 0);
        switch (scan.state) {
            case head_state::incomplete:
                return false;
            case head_state::bad_line_end:
                append_response(out, 400, "line ends must be CRLF\n", "close");
                return true;
            case head_state::too_large:
                append_response(out, 431, "request head too large\n", "close");
                return true;
            case head_state::complete:
                break;
        }
        const parse_result parsed = parse_request(std::string_view(in).substr(0, scan.length));
        switch (parsed.status) {
            case parse_status::ok:
                break;
            case parse_status::bad_request_line:
                append_response(out, 400, "malformed request line\n", "close");
                return true;
            case parse_status::bad_header:
                append_response(out, 400, "malformed header field\n", "close");
                return true;
            case parse_status::too_many_headers:
                append_response(out, 431, "too many header fields\n", "close");
                return true;
        }
        // Bodies are not read, so what follows one is not the next request;
        // HTTP/1.0's keep-alive these two servers do not speak.
        const request& req = parsed.req;
        const bool close = draining || req.has_body || !req.keep_alive || req.version == "HTTP/1.0";
        const std::string_view connection = close ? "close" : "";
        if (req.method != "GET") {
            append_response(out, 405, "only GET is supported\n", connection, "Allow: GET\r\n");
        } else if (req.path == "/") {
            append_response(out, 200, hello, connection);
        } else {
            append_response(out, 404, "not found\n", connection);
        }
        in.erase(0, scan.length);
        if (close) return true;
    }
}

}  // namespace http

#endif  // SUPERVISE_EXAMPLES_HTTP_ANSWERS_HPP
