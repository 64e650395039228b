#!/usr/bin/python3
"""Reads an OpenMetrics text exposition with a real parser and prints what it found.

    /usr/bin/python3 tests/openmetrics_check.py FILE [PREFIX]

The parser is prometheus_client's (Debian's python3-prometheus-client, for the system python
/usr/bin/python3, not a pyenv one), which is the reference implementation's Python client: its
text_string_to_metric_families raises on what the format forbids (no "# EOF", metadata after
samples, interleaved families, a counter sample without _total, a unit the name does not end
with, a stateset or info value other than 0/1 or 1, a negative counter, ...). Its own docstring
says it is laxer than the Go parser, so the few rules it leaves out that supervise promises are
checked here too: the text is UTF-8 (the parser's TODO), every family has a TYPE and a HELP,
a counter's family name does not itself end in _total, and every name starts with PREFIX.

Output, one line each, tab-separated, for the C++ tests to read:
    F  family  type  unit  help
    S  family  sample-name  labels-as-JSON(sorted keys, ASCII)  value
The value is an integer when it is one ("3"), else Python's repr of the float ("12.345").
Exit status 0 when the exposition is valid, 1 with one line "invalid: WHY" when it is not, 2 on
a bad command line.
"""
import json
import sys

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as e:  # the package is missing: say so, not a traceback
    print(f"invalid: cannot import prometheus_client ({e}); apt-get install python3-prometheus-client")
    sys.exit(1)


def number(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def check(text, prefix):
    lines = []
    metadata = {}  # family -> set of "TYPE"/"HELP"/"UNIT" seen
    for line in text.split("\n"):
        if line.startswith("# ") and line != "# EOF":
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                metadata.setdefault(parts[2], set()).add(parts[1])
    for family in text_string_to_metric_families(text):
        seen = metadata.get(family.name, set())
        if "TYPE" not in seen or "HELP" not in seen:
            raise ValueError(f"family {family.name} lacks a TYPE or a HELP line")
        if family.type == "counter" and family.name.endswith("_total"):
            raise ValueError(f"counter family {family.name} ends in _total")
        if not family.name.startswith(prefix):
            raise ValueError(f"family {family.name} does not start with {prefix}")
        lines.append("\t".join(["F", family.name, family.type, family.unit,
                                json.dumps(family.documentation)]))
        for s in family.samples:
            labels = json.dumps(s.labels, sort_keys=True, separators=(",", ":"))
            lines.append("\t".join(["S", family.name, s.name, labels, number(s.value)]))
    return lines


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    prefix = sys.argv[2] if len(sys.argv) == 3 else ""
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")  # strict: a stray byte is an error, not a replacement
        lines = check(text, prefix)
    except (ValueError, UnicodeDecodeError) as e:
        print("invalid: " + str(e).replace("\n", "\\n"))
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
