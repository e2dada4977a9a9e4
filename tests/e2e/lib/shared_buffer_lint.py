#!/usr/bin/env python3
"""Lint for the shape behind `who` printing the egress IP as the router's
address: one caller-provided buffer filled twice within one statement
(`printf("%s %s", su_addr__str(a, buf), su_addr__str(b, buf))`), so both
arguments point at whatever was formatted last.  Also flags the libc
helpers that return one static buffer (inet_ntoa, ether_ntoa, ctime,
asctime, strsignal) used twice in a statement.

    shared_buffer_lint.py DIR...   prints FILE:LINE: statement; exits 1 if any
"""
import os, re, sys

FILL = re.compile(r"\b(su_\w+__str|su_\w+__fmt|u32_text)\s*\(")
STATIC = re.compile(r"\b(inet_ntoa|ether_ntoa|ctime|asctime|strsignal)\s*\(")


def args_of(text, start):
    """The argument list of the call whose '(' is at text[start - 1]."""
    depth, i = 1, start
    while i < len(text) and depth:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    inner, parts, depth, cur = text[start:i - 1], [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += {"(": 1, ")": -1, "[": 1, "]": -1}.get(ch, 0)
        cur += ch
    parts.append(cur.strip())
    return parts


def lint(path):
    text = open(path, errors="replace").read()
    found, offset = [], 0
    for stmt in text.split(";"):
        calls = list(FILL.finditer(stmt))
        bufs = [args_of(stmt, m.end())[-1] for m in calls]
        statics = list(STATIC.finditer(stmt))
        if len(bufs) != len(set(bufs)) or len(statics) > 1:
            first = (calls or statics)[0].start()
            line = text.count("\n", 0, offset + first) + 1
            found.append("%s:%d: %s" % (path, line, " ".join(stmt[stmt.rfind("}", 0, first) + 1:].split())[:200]))
        offset += len(stmt) + 1
    return found


def main():
    found = []
    for top in sys.argv[1:]:
        for root, _, files in os.walk(top):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    found += lint(os.path.join(root, f))
    for f in found:
        print(f)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
