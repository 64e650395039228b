# Checks what a function can call, from the disassembly of a linked program
# (`objdump -d --no-show-raw-insn -C`, x86-64, AT&T syntax).
#
#   awk -v root=ERE -v allow="name ..." [-v pads="name ..."] [-v require="name ..."] \
#       -f call_graph.awk dump.txt
#
# Starting at the one function whose demangled name matches the extended regular expression
# `root`, every call and every jump (conditional or not) that leaves the function is followed:
#   - a jump inside the function (one of its own labels) is ignored;
#   - a target reached through the PLT or the GOT (`write@plt`, `*0x..(%rip) # <write@GLIBC..>`)
#     is an external function and must be named in `allow`;
#   - a target defined in the program (a helper such as signal_bit at -O0, a .cold part, an
#     inline function from a header) is checked the same way, recursively;
#   - an indirect call or jump (`call *%rax`), or a target objdump cannot name, is rejected:
#     what it reaches cannot be known from the code;
#   - a name in `pads` is accepted without being followed. It is meant for a compiler's
#     terminate trampoline (clang's __clang_call_terminate), which a noexcept function's landing
#     pad calls only when a callee throws; g++ reaches std::terminate for the same case through
#     its unwind tables instead, where no call shows in the code.
# Every name in `require` must be among the external callees found: a parser that finds no calls
# at all would otherwise accept everything.
#
# Prints the call tree, one callee a line, then `verdict: accepted` or `verdict: rejected`.
# Exit status: 0 accepted, 1 rejected, 2 the root was not found exactly once.

function trim(s) {
    sub(/^[ \t]+/, "", s)
    sub(/[ \t]+$/, "", s)
    return s
}

# The text between the first "<" and the last ">" of s: a symbol as objdump prints it, which may
# itself contain angle brackets (std::__atomic_base<unsigned long>::fetch_or(...)).
function bracketed(s,    first, last) {
    first = index(s, "<")
    if (first == 0) return ""
    last = length(s)
    while (last > first && substr(s, last, 1) != ">") last--
    if (last <= first) return ""
    return substr(s, first + 1, last - first - 1)
}

# Records one edge of the call graph, once.
function add_edge(from, to,    list) {
    if ((from SUBSEP to) in seen_edge) return
    seen_edge[from, to] = 1
    # Not `edges[from] = (from in edges) ? ...`: mawk creates the element on the left first.
    list = (from in edges) ? edges[from] SUBSEP to : to
    edges[from] = list
}

# A function header: "0000000000001139 <supervise::v0_1::detail::on_signal(int)>:".
/^[0-9a-f]+ <.*>:$/ {
    current = bracketed($0)
    defined[current] = 1
    order[++functions] = current
    next
}

# An instruction: "    1144:\tcall   1030 <__errno_location@plt>".
/^[ \t]*[0-9a-f]+:\t/ {
    if (current == "") next
    insn = $0
    sub(/^[ \t]*[0-9a-f]+:\t/, "", insn)
    # Prefixes that do not change where a branch goes (CET/MPX).
    while (insn ~ /^(bnd|notrack|rex\.W|cs|ds) /) sub(/^[a-zA-Z.]+ /, "", insn)
    mnemonic = insn
    sub(/[ \t].*$/, "", mnemonic)
    if (mnemonic !~ /^(call|callq|jmp|jmpq|j[a-z]+)$/) next
    operands = insn
    sub(/^[^ \t]+[ \t]*/, "", operands)
    comment = ""
    if (index(operands, "#") > 0) {
        comment = substr(operands, index(operands, "#") + 1)
        operands = substr(operands, 1, index(operands, "#") - 1)
    }
    operands = trim(operands)
    if (operands ~ /^\*/) {
        # Indirect: acceptable only through a GOT slot objdump names (-fno-plt code).
        if (operands ~ /\(%rip\)$/ && bracketed(comment) != "") {
            target = bracketed(comment)
            sub(/@.*$/, "", target)
            add_edge(current, "@ext " target)
        } else {
            add_edge(current, "@indirect " mnemonic " " operands)
        }
        next
    }
    target = bracketed(operands)
    if (target == "") {
        add_edge(current, "@unknown " mnemonic " " operands)
        next
    }
    sub(/\+0x[0-9a-f]+$/, "", target)
    if (target == current) next  # one of the function's own labels
    if (target ~ /@plt$/) {
        sub(/@plt$/, "", target)
        add_edge(current, "@ext " target)
        next
    }
    add_edge(current, target)
}

function listed(name, list,    i, n, names) {
    n = split(list, names, " ")
    for (i = 1; i <= n; i++) if (names[i] == name) return 1
    return 0
}

function allowed(name) {
    return listed(name, allow)
}

# Depth-first walk of the callees of fn, printing them indented by depth.
function walk(fn, depth,    list, n, i, to, pad, name) {
    visiting[fn] = 1
    pad = sprintf("%" (2 * depth) "s", "")
    if (!(fn in edges)) return
    n = split(edges[fn], list, SUBSEP)
    for (i = 1; i <= n; i++) {
        to = list[i]
        if (to ~ /^@ext /) {
            name = substr(to, 6)
            found_external[name] = 1
            if (allowed(name)) {
                printf "%s-> %s  [external, allowed]\n", pad, name
            } else {
                printf "%s-> %s  [external, FORBIDDEN]\n", pad, name
                violations++
            }
        } else if (to ~ /^@(indirect|unknown) /) {
            printf "%s-> %s  [target unknown, FORBIDDEN]\n", pad, substr(to, 2)
            violations++
        } else if (listed(to, pads)) {
            printf "%s-> %s  [landing pad: runs only if a callee throws; not followed]\n", pad, to
        } else if (to in defined) {
            if (to in visiting) {
                printf "%s-> %s  [in this program, already followed]\n", pad, to
            } else {
                printf "%s-> %s  [in this program, followed:]\n", pad, to
                walk(to, depth + 1)
            }
        } else {
            # A direct target that is neither in this program nor in its PLT.
            name = to
            sub(/@.*$/, "", name)
            found_external[name] = 1
            if (allowed(name)) {
                printf "%s-> %s  [external, allowed]\n", pad, name
            } else {
                printf "%s-> %s  [external, FORBIDDEN]\n", pad, name
                violations++
            }
        }
    }
}

END {
    matches = 0
    for (i = 1; i <= functions; i++) {
        if (order[i] ~ root) {
            matches++
            start = order[i]
        }
    }
    if (matches != 1) {
        printf "error: %d functions match /%s/ (expected exactly one)\n", matches, root
        exit 2
    }
    print start
    violations = 0
    walk(start, 1)
    n = split(require, needed, " ")
    for (i = 1; i <= n; i++) {
        if (!(needed[i] in found_external)) {
            printf "error: expected a call to %s, found none: is the disassembly parsed?\n", needed[i]
            violations++
        }
    }
    if (violations > 0) {
        printf "verdict: rejected (%d forbidden or unknown callees)\n", violations
        exit 1
    }
    print "verdict: accepted"
    exit 0
}
