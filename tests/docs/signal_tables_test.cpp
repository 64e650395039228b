// The signal tables of docs/signals.md (seed preset, master and worker), the nginx preset's
// table of docs/strategies.md and supervise-exec's two tables of docs/supervise-exec.md (each
// preset's master map and its forwarding twin) are compared, row for row, with the signal_map
// types they document, so a map and its page cannot drift apart. Rows are read from the types
// themselves (no list of expected rows here), and the parser is strict: a table whose format
// changed fails with the line it could not read rather than passing half-read.
//
// Usage: signal_tables_test [SIGNALS_MD STRATEGIES_MD SUPERVISE_EXEC_MD]; without arguments the
// paths are docs/signals.md, docs/strategies.md and docs/supervise-exec.md from the working
// directory (under Bazel, the runfiles root of the workspace).
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <supervise.hpp>

// supervise-exec's maps live in its source: without its main(), and without the warnings for
// the many functions of it this test does not call.
#define SUPERVISE_EXAMPLE_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "examples/exec/supervise_exec.cpp"  // NOLINT(bugprone-suspicious-include): on purpose
#pragma GCC diagnostic pop

namespace {

// ---- Signal names, as the pages write them ----

struct named_signal {
    const char* name;
    int number;
};

// Every standard signal; real-time ones have no fixed name (SIGRTMIN is not a constant).
constexpr named_signal signal_names[] = {
    {"SIGHUP", SIGHUP},       {"SIGINT", SIGINT},       {"SIGQUIT", SIGQUIT},
    {"SIGILL", SIGILL},       {"SIGTRAP", SIGTRAP},     {"SIGABRT", SIGABRT},
    {"SIGBUS", SIGBUS},       {"SIGFPE", SIGFPE},       {"SIGKILL", SIGKILL},
    {"SIGUSR1", SIGUSR1},     {"SIGSEGV", SIGSEGV},     {"SIGUSR2", SIGUSR2},
    {"SIGPIPE", SIGPIPE},     {"SIGALRM", SIGALRM},     {"SIGTERM", SIGTERM},
    {"SIGCHLD", SIGCHLD},     {"SIGCONT", SIGCONT},     {"SIGSTOP", SIGSTOP},
    {"SIGTSTP", SIGTSTP},     {"SIGTTIN", SIGTTIN},     {"SIGTTOU", SIGTTOU},
    {"SIGURG", SIGURG},       {"SIGXCPU", SIGXCPU},     {"SIGXFSZ", SIGXFSZ},
    {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF},     {"SIGWINCH", SIGWINCH},
    {"SIGIO", SIGIO},         {"SIGPWR", SIGPWR},       {"SIGSYS", SIGSYS},
};

std::optional<int> signal_number(std::string_view name) {
    for (const auto& s : signal_names) {
        if (name == s.name) return s.number;
    }
    return std::nullopt;
}

std::string signal_name(int number) {
    for (const auto& s : signal_names) {
        if (number == s.number) return s.name;
    }
    return "signal " + std::to_string(number);
}

// ---- The presets' rows, read from the types ----

// The name each page gives an action. No definition for the primary template: a new action
// does not compile here until it has a name.
template <class Action>
struct action_name;
template <>
struct action_name<supervise::terminate> {
    static std::string get() { return "terminate"; }
};
template <>
struct action_name<supervise::print_stats> {
    static std::string get() { return "print_stats"; }
};
template <>
struct action_name<supervise::ignore> {
    static std::string get() { return "ignore"; }
};
template <>
struct action_name<supervise::graceful_stop> {
    static std::string get() { return "graceful_stop"; }
};
template <>
struct action_name<supervise::rolling_reload> {
    static std::string get() { return "rolling_reload"; }
};
template <>
struct action_name<supervise::scale_up> {
    static std::string get() { return "scale_up"; }
};
template <>
struct action_name<supervise::scale_down> {
    static std::string get() { return "scale_down"; }
};
template <>
struct action_name<supervise::stop_workers> {
    static std::string get() { return "stop_workers"; }
};
template <int Signal>
struct action_name<supervise::forward<Signal>> {
    static std::string get() { return "forward<" + signal_name(Signal) + ">"; }
};
template <>
struct action_name<supervise::deliver> {
    static std::string get() { return "deliver"; }
};

// signal number -> action name
using table = std::map<int, std::string>;

template <class Map>
struct rows_of;
template <class... Rows>
struct rows_of<supervise::signal_map<Rows...>> {
    static table get() {
        table rows;
        (rows.emplace(Rows::signal, action_name<typename Rows::action>::get()), ...);
        return rows;
    }
};

// ---- Reading the pages ----

int failures = 0;

struct page {
    std::string path;
    std::vector<std::string> lines;  // lines[0] is line 1
};

void fail(const page& p, std::size_t index, const std::string& message) {
    std::fprintf(stderr, "FAIL: %s:%zu: %s\n", p.path.c_str(), index + 1, message.c_str());
    ++failures;
}

std::optional<page> read_page(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        std::fprintf(stderr, "FAIL: cannot open %s\n", path.c_str());
        ++failures;
        return std::nullopt;
    }
    page p{path, {}};
    for (std::string line; std::getline(in, line);) p.lines.push_back(line);
    if (p.lines.empty()) {
        std::fprintf(stderr, "FAIL: %s is empty\n", path.c_str());
        ++failures;
        return std::nullopt;
    }
    return p;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
}

// The cells of a table row `| a | b |`, or nothing if the line is not one.
std::optional<std::vector<std::string>> cells_of(std::string_view line) {
    if (line.size() < 2 || line.front() != '|' || line.back() != '|') return std::nullopt;
    line = line.substr(1, line.size() - 2);
    std::vector<std::string> cells;
    for (;;) {
        const auto bar = line.find('|');
        cells.emplace_back(trim(line.substr(0, bar)));
        if (bar == std::string_view::npos) break;
        line.remove_prefix(bar + 1);
    }
    return cells;
}

struct table_row {
    std::size_t index;  // into page::lines
    std::vector<std::string> cells;
};

// The rows of the first table under the one heading `heading` matches (before the next
// heading), whose header row must be `header`. heading_text says what that heading is.
template <class HeadingMatch>
std::optional<std::vector<table_row>> table_under(const page& p, const char* what,
                                                  const std::string& heading_text,
                                                  HeadingMatch heading, const std::string& header) {
    std::optional<std::size_t> at;
    for (std::size_t i = 0; i < p.lines.size(); ++i) {
        if (!heading(p.lines[i])) continue;
        if (at) {
            fail(p, i, "a second heading " + heading_text + " (the table of " + what + ")");
            return std::nullopt;
        }
        at = i;
    }
    if (!at) {
        fail(p, p.lines.size() - 1,
             "no heading " + heading_text + " (the table of " + std::string(what) +
                 ") up to the end of the page");
        return std::nullopt;
    }
    std::size_t i = *at + 1;
    while (i < p.lines.size() && !starts_with(p.lines[i], "|") && !starts_with(p.lines[i], "#"))
        ++i;
    if (i == p.lines.size() || !starts_with(p.lines[i], "|")) {
        fail(p, *at, std::string("no table under the heading of ") + what);
        return std::nullopt;
    }
    if (p.lines[i] != header) {
        fail(p, i, "the table of " + std::string(what) + " must start with the header row `" +
                       header + "`");
        return std::nullopt;
    }
    const auto columns = cells_of(header)->size();
    ++i;
    const auto separator = i < p.lines.size() ? cells_of(p.lines[i]) : std::nullopt;
    bool separator_ok = separator && separator->size() == columns;
    for (const auto& cell : separator ? *separator : std::vector<std::string>{}) {
        separator_ok = separator_ok && cell.size() >= 3 && cell.find_first_not_of('-') == cell.npos;
    }
    if (!separator_ok) {
        fail(p, i, "the header row must be followed by `|---|...|` with one cell per column");
        return std::nullopt;
    }
    std::vector<table_row> rows;
    for (++i; i < p.lines.size() && starts_with(p.lines[i], "|"); ++i) {
        auto cells = cells_of(p.lines[i]);
        if (!cells || cells->size() != columns) {
            fail(p, i, "not a table row of " + std::to_string(columns) + " cells");
            return std::nullopt;
        }
        rows.push_back({i, std::move(*cells)});
    }
    if (rows.empty()) {
        fail(p, i, std::string("the table of ") + what + " has no rows");
        return std::nullopt;
    }
    return rows;
}

// "`name`" -> "name"
std::optional<std::string> code_span(std::string_view cell) {
    if (cell.size() < 3 || cell.front() != '`' || cell.back() != '`') return std::nullopt;
    cell = cell.substr(1, cell.size() - 2);
    if (cell.find('`') != cell.npos) return std::nullopt;
    return std::string(cell);
}

// Both ways: every row of the page is the map's, every row of the map is on the page.
// line_of: where each signal of the table is (also a "—" one); table_line: where the table is.
void compare(const page& p, const char* what, const table& documented,
             const std::map<int, std::size_t>& line_of, std::size_t table_line,
             const table& mapped) {
    for (const auto& [sig, action] : documented) {
        const auto row = mapped.find(sig);
        if (row == mapped.end()) {
            fail(p, line_of.at(sig),
                 signal_name(sig) + " is documented as `" + action + "` but " + what +
                     " has no row for it");
        } else if (row->second != action) {
            fail(p, line_of.at(sig),
                 signal_name(sig) + " is documented as `" + action + "` but " + what +
                     " maps it to `" + row->second + "`");
        }
    }
    for (const auto& [sig, action] : mapped) {
        if (documented.count(sig) == 0) {
            const auto at = line_of.find(sig);
            fail(p, at == line_of.end() ? table_line : at->second,
                 std::string(what) + " maps " + signal_name(sig) + " to `" + action +
                     (at == line_of.end() ? "` but the table has no row for it"
                                          : "` but the table says \xE2\x80\x94"));
        }
    }
}

// ---- docs/signals.md: `| # | signal | action | what happens |` ----

void check_signals_table(const page& p, const char* heading_word, const char* map_name,
                         const table& mapped) {
    const std::string heading_prefix = std::string("## ") + heading_word;
    const auto rows = table_under(
        p, map_name, "`" + heading_prefix + "`",
        [&](const std::string& line) {
            return line == heading_prefix || starts_with(line, heading_prefix + " ");
        },
        "| # | signal | action | what happens |");
    if (!rows) return;

    table documented;
    std::map<int, std::size_t> line_of;
    for (const auto& row : *rows) {
        const auto& number = row.cells[0];
        const auto& name = row.cells[1];
        const auto& action = row.cells[2];
        const auto sig = signal_number(name);
        if (!sig) {
            fail(p, row.index, "`" + name + "` is not a signal name this test knows (SIGxxx)");
            continue;
        }
        if (number.empty() || number.size() > 2 ||
            number.find_first_not_of("0123456789") != number.npos) {
            fail(p, row.index, "the # cell `" + number + "` is not a number");
            continue;
        }
#if defined(__x86_64__)
        // The page gives Linux x86-64 numbers.
        if (std::stoi(number) != *sig) {
            fail(p, row.index,
                 name + " is numbered " + number + ", but is " + std::to_string(*sig));
        }
#endif
        if (row.cells[3].empty()) fail(p, row.index, "the `what happens` cell is empty");
        // SIGCHLD is the pool's own (a signal_map row for it does not compile), so its row
        // documents no map row.
        if (*sig == SIGCHLD) {
            if (action != "*(the pool's)*") {
                fail(p, row.index, "SIGCHLD's action must be `*(the pool's)*`: no map has it");
            }
            continue;
        }
        const auto name_of_action = code_span(action);
        if (!name_of_action) {
            fail(p, row.index,
                 "the action cell `" + action + "` is not one action name in backticks");
            continue;
        }
        if (!documented.emplace(*sig, *name_of_action).second) {
            fail(p, row.index, name + " has a second row");
            continue;
        }
        line_of.emplace(*sig, row.index);
    }
    compare(p, map_name, documented, line_of, rows->front().index - 2, mapped);
}

// ---- docs/strategies.md, "The nginx preset": `| signal | master | worker |` ----

// Signals written without SIG and joined by ", " (the same actions for each) or " / " (one
// action each, in order): "TERM, INT", "TTIN / TTOU", "QUIT".
struct signal_cell {
    std::vector<int> signals;
    bool paired = false;  // joined by " / "
};

std::optional<signal_cell> parse_signal_cell(const page& p, std::size_t index,
                                             std::string_view cell) {
    signal_cell parsed;
    const bool has_comma = cell.find(", ") != cell.npos;
    const bool has_slash = cell.find(" / ") != cell.npos;
    if (has_comma && has_slash) {
        fail(p, index, "a signal cell joins its signals by \", \" or by \" / \", not both");
        return std::nullopt;
    }
    parsed.paired = has_slash;
    const std::string_view separator = has_slash ? " / " : ", ";
    for (;;) {
        const auto end = cell.find(separator);
        const std::string name(cell.substr(0, end));
        const auto sig = signal_number("SIG" + name);
        if (name.empty() || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
                                name.npos || !sig) {
            fail(p, index, "`" + name + "` is not a signal name without SIG (TERM, TTIN, ...)");
            return std::nullopt;
        }
        parsed.signals.push_back(*sig);
        if (end == std::string_view::npos) break;
        cell.remove_prefix(end + separator.size());
    }
    return parsed;
}

// "—" (no row), or "`a`" or "`a` / `b`", each optionally followed by " (a remark)".
std::optional<std::vector<std::string>> parse_action_cell(const page& p, std::size_t index,
                                                          std::string_view cell) {
    const std::string_view none = "\xE2\x80\x94";  // U+2014 EM DASH
    if (cell == none) return std::vector<std::string>{};
    const auto remark = cell.find(" (");
    if (remark != cell.npos) {
        if (!ends_with(cell, ")")) {
            fail(p, index, "`" + std::string(cell) + "`: a remark is \" (...)\" at the end");
            return std::nullopt;
        }
        cell = cell.substr(0, remark);
    }
    std::vector<std::string> actions;
    for (;;) {
        const auto end = cell.find(" / ");
        const auto action = code_span(cell.substr(0, end));
        if (!action) {
            fail(p, index,
                 "`" + std::string(cell.substr(0, end)) +
                     "` is not an action name in backticks (an action cell is \xE2\x80\x94, "
                     "`a` or `a` / `b`, with an optional \" (remark)\")");
            return std::nullopt;
        }
        actions.push_back(*action);
        if (end == std::string_view::npos) break;
        cell.remove_prefix(end + 3);
    }
    return actions;
}

// A table under `heading` whose first column is a signal cell and whose next columns are action
// cells of the maps in `maps` (name, rows), in that order; any further column is free text,
// which must not be empty.
struct mapped_column {
    const char* name;
    const table* rows;
};

void check_side_by_side(const page& p, const std::string& heading, const std::string& header,
                        const std::vector<mapped_column>& maps) {
    std::string what;
    for (const auto& m : maps) what += (what.empty() ? "" : " / ") + std::string(m.name);
    const auto rows = table_under(
        p, what.c_str(), "`" + heading + "` (any level)",
        [&](const std::string& line) {
            const auto text = line.find_first_not_of('#');
            return text != 0 && text != line.npos && line[text] == ' ' &&
                   line.substr(text + 1) == heading;
        },
        header);
    if (!rows) return;

    const std::size_t sides = maps.size();
    std::vector<table> documented(sides);
    std::vector<std::map<int, std::size_t>> line_of(sides);
    std::map<int, std::size_t> row_of;  // each signal in one row only
    for (const auto& row : *rows) {
        for (std::size_t column = 1 + sides; column < row.cells.size(); ++column) {
            if (row.cells[column].empty()) fail(p, row.index, "a text cell is empty");
        }
        const auto signals = parse_signal_cell(p, row.index, row.cells[0]);
        if (!signals) continue;
        bool repeated = false;
        for (const int sig : signals->signals) {
            if (!row_of.emplace(sig, row.index).second) {
                fail(p, row.index, signal_name(sig) + " is in a second row");
                repeated = true;
            }
        }
        if (repeated) continue;
        for (std::size_t side = 0; side < sides; ++side) {
            const auto actions = parse_action_cell(p, row.index, row.cells[1 + side]);
            if (!actions) continue;
            if (actions->empty()) {
                // "—": none of the row's signals is in this map; the comparison checks it.
                for (const int sig : signals->signals) line_of[side].emplace(sig, row.index);
                continue;
            }
            const auto n = signals->signals.size();
            if (signals->paired ? actions->size() != n : actions->size() != 1) {
                fail(p, row.index,
                     signals->paired
                         ? "signals joined by \" / \" need as many actions joined by \" / \""
                         : "signals joined by \", \" share one action");
                continue;
            }
            for (std::size_t k = 0; k < n; ++k) {
                const int sig = signals->signals[k];
                documented[side].emplace(sig, (*actions)[signals->paired ? k : 0]);
                line_of[side].emplace(sig, row.index);
            }
        }
    }
    // A "—" signal that the map has is caught here as "no row on the page".
    const auto table_line = rows->front().index - 2;
    for (std::size_t side = 0; side < sides; ++side) {
        compare(p, maps[side].name, documented[side], line_of[side], table_line, *maps[side].rows);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 1 && argc != 4) {
        std::fprintf(stderr, "usage: %s [SIGNALS_MD STRATEGIES_MD SUPERVISE_EXEC_MD]\n", argv[0]);
        return 2;
    }
    const std::string signals_md = argc == 4 ? argv[1] : "docs/signals.md";
    const std::string strategies_md = argc == 4 ? argv[2] : "docs/strategies.md";
    const std::string exec_md = argc == 4 ? argv[3] : "docs/supervise-exec.md";

    // The alias names: they stay when the presets get other primary names.
    const auto seed_master = rows_of<supervise::default_master_signals>::get();
    const auto seed_worker = rows_of<supervise::default_worker_signals>::get();
    const auto nginx_master = rows_of<supervise::nginx_master_signals>::get();
    const auto nginx_worker = rows_of<supervise::nginx_worker_signals>::get();
    const auto exec_seed = rows_of<forwarding::seed_master>::get();
    const auto exec_nginx = rows_of<forwarding::nginx_master>::get();

    if (const auto p = read_page(signals_md)) {
        check_signals_table(*p, "Master", "default_master_signals", seed_master);
        check_signals_table(*p, "Worker", "default_worker_signals", seed_worker);
    }
    if (const auto p = read_page(strategies_md)) {
        check_side_by_side(
            *p, "The nginx preset", "| signal | master | worker |",
            {{"nginx_master_signals", &nginx_master}, {"nginx_worker_signals", &nginx_worker}});
    }
    // supervise-exec's masters: the preset's own, and the forwarding twin.
    if (const auto p = read_page(exec_md)) {
        const std::string header = "| signal | default | forwarding | what happens |";
        check_side_by_side(*p, "With `--preset seed`", header,
                           {{"default_master_signals", &seed_master},
                            {"supervise-exec's forwarding::seed_master", &exec_seed}});
        check_side_by_side(*p, "With `--preset nginx`", header,
                           {{"nginx_master_signals", &nginx_master},
                            {"supervise-exec's forwarding::nginx_master", &exec_nginx}});
    }

    if (failures != 0) {
        std::fprintf(stderr, "%d failure(s): the pages and the presets disagree\n", failures);
        return 1;
    }
    std::printf(
        "PASS: %s: default_master_signals (%zu rows), default_worker_signals (%zu); %s: "
        "nginx_master_signals (%zu), nginx_worker_signals (%zu); %s: the presets' masters and "
        "supervise-exec's forwarding::seed_master (%zu), forwarding::nginx_master (%zu)\n",
        signals_md.c_str(), seed_master.size(), seed_worker.size(), strategies_md.c_str(),
        nginx_master.size(), nginx_worker.size(), exec_md.c_str(), exec_seed.size(),
        exec_nginx.size());
    return 0;
}
