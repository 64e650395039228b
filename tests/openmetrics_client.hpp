// OpenMetrics expositions read by real programs, for the tests of
// statistics::openmetrics() (metrics_test) and of the example daemon's /metrics
// (daemon_test): prometheus_client's parser run by tests/openmetrics_check.py
// under the system python (/usr/bin/python3, where Debian's
// python3-prometheus-client is), and curl as the scraping client.
//
// Each program runs in a harness::child (its own process group, killed and
// reaped whatever happens) and every wait is bounded.
#ifndef SUPERVISE_TESTS_OPENMETRICS_CLIENT_HPP
#define SUPERVISE_TESTS_OPENMETRICS_CLIENT_HPP

#include <doctest/doctest.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace openmetrics_client {

using namespace harness;

// A program run with `args` (args[0] is its path), stdout and stderr on
// pipes, in a harness::child (a process group of its own, killed and reaped
// when the object goes). Not a program_process: that one reaps every child
// of the test when it goes, and these run beside a pool under test.
class command {
  public:
    explicit command(std::vector<std::string> args) : args_(std::move(args)) {
        for (std::string& arg : args_) argv_.push_back(arg.data());
        argv_.push_back(nullptr);
        process_.emplace([&] {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // kept across execv
            ::dup2(out_pipe_.write_fd, STDOUT_FILENO);
            ::dup2(err_pipe_.write_fd, STDERR_FILENO);
            ::execv(argv_[0], argv_.data());
            return 127;
        });
        out_pipe_.close_write();
        err_pipe_.close_write();
    }

    // Its exit status once it has exited and both pipes were read to the end,
    // or nothing after the test's patience.
    std::optional<int> finish() {
        out.wait_eof();
        err.wait_eof();
        return process_->wait();
    }

  private:
    std::vector<std::string> args_;
    std::vector<char*> argv_;
    pipe_pair out_pipe_;
    pipe_pair err_pipe_;
    std::optional<child> process_;

  public:
    reader out{out_pipe_.read_fd};
    reader err{err_pipe_.read_fd};
};

// A scratch file of this test process: under $TEST_TMPDIR (Bazel's, or the
// one tools/mutants.py makes), else /tmp.
inline std::string scratch_path(const std::string& name) {
    const char* dir = std::getenv("TEST_TMPDIR");
    static int serial = 0;
    return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/metrics-" +
           std::to_string(::getpid()) + "-" + std::to_string(++serial) + "-" + name;
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

struct family {
    std::string name, type, unit, help;  // help as JSON text
};

struct sample {
    std::string family;
    std::string name;
    std::string labels;  // JSON, sorted keys: {"worker":"0"}
    std::string value;   // "3", "12.345"
};

// What the parser made of an exposition.
struct exposition {
    bool valid = false;
    std::string error;  // the parser's complaint, or how the checker failed
    std::vector<family> families;
    std::vector<sample> samples;

    const family* find_family(const std::string& name) const {
        for (const family& f : families) {
            if (f.name == name) return &f;
        }
        return nullptr;
    }
    // The value of sample `name` with exactly these labels, if it is there.
    std::optional<std::string> value(const std::string& name,
                                     const std::string& labels = "{}") const {
        for (const sample& s : samples) {
            if (s.name == name && s.labels == labels) return s.value;
        }
        return std::nullopt;
    }
    double number(const std::string& name, const std::string& labels = "{}") const {
        const std::optional<std::string> v = value(name, labels);
        return v ? std::strtod(v->c_str(), nullptr) : -1;
    }
    // Every sample of a counter family ("<name>{labels}" -> value), for
    // comparing two scrapes.
    std::map<std::string, double> counters() const {
        std::map<std::string, double> found;
        for (const sample& s : samples) {
            const family* f = find_family(s.family);
            if (f != nullptr && f->type == "counter") {
                found[s.name + s.labels] = std::strtod(s.value.c_str(), nullptr);
            }
        }
        return found;
    }
};

inline std::string checker_script() {
    return runfile("tests/openmetrics_check.py", "OPENMETRICS_CHECK");
}

// Parses the exposition in the file `path` with prometheus_client.
inline exposition parse_file(const std::string& path) {
    exposition result;
    command python({"/usr/bin/python3", checker_script(), path, "supervise_"});
    const std::optional<int> status = python.finish();
    const std::string& text = python.out.text();
    if (!status || !exited_with(status, 0)) {
        result.error = "checker " + describe_status(status) + ": " + text + python.err.text();
        return result;
    }
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::vector<std::string> fields;
        std::istringstream split(line);
        for (std::string field; std::getline(split, field, '\t');) fields.push_back(field);
        if (fields.size() == 5 && fields[0] == "F") {
            result.families.push_back({fields[1], fields[2], fields[3], fields[4]});
        } else if (fields.size() == 5 && fields[0] == "S") {
            result.samples.push_back({fields[1], fields[2], fields[3], fields[4]});
        } else if (!line.empty()) {
            result.error = "checker printed '" + line + "'";
            return result;
        }
    }
    result.valid = true;
    return result;
}

// Parses `text` (written to a scratch file first) with prometheus_client.
inline exposition parse(const std::string& text) {
    const std::string path = scratch_path("exposition.txt");
    {
        std::ofstream out(path, std::ios::binary);
        out << text;
    }
    exposition result = parse_file(path);
    ::unlink(path.c_str());
    return result;
}

// One GET with curl: its exit status, the response head and body.
struct scraped {
    std::optional<int> status;
    std::string head;
    std::string body;
    std::string path;  // where the body is, until the object goes
    scraped() = default;
    scraped(const scraped&) = delete;
    scraped& operator=(const scraped&) = delete;
    scraped(scraped&& other) noexcept
        : status(other.status),
          head(std::move(other.head)),
          body(std::move(other.body)),
          path(std::move(other.path)) {
        other.path.clear();
    }
    ~scraped() {
        if (!path.empty()) ::unlink(path.c_str());
    }
    int http_status() const {
        return head.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(head.c_str() + 9) : 0;
    }
};

inline scraped curl_get(int port, const std::string& target) {
    scraped result;
    result.path = scratch_path("body");
    const std::string head_path = scratch_path("head");
    command curl({"/usr/bin/curl", "--silent", "--show-error", "--max-time", "5", "--output",
                  result.path, "--dump-header", head_path,
                  "http://127.0.0.1:" + std::to_string(port) + target});
    result.status = curl.finish();
    result.head = read_file(head_path);
    result.body = read_file(result.path);
    ::unlink(head_path.c_str());
    return result;
}

}  // namespace openmetrics_client

#endif  // SUPERVISE_TESTS_OPENMETRICS_CLIENT_HPP
