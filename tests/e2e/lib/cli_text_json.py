#!/usr/bin/env python3
"""Every field the text output of a query command shows equals its --json
counterpart (tests/e2e/cli.t, "text output matches json").

    cli_text_json.py SU who PLAN IP[:PORT]
    cli_text_json.py SU show PLAN [ARGS...]
    cli_text_json.py SU diff OLD NEW
    cli_text_json.py SU geofeed PLAN
    cli_text_json.py SU plan FLEET [ARGS...]     (runs with --check --cost)

Runs the command twice, as text and with --json, parses the text, and
prints one line per field that differs; exits 1 if any does.  The text is
parsed by its documented layout, so a change to either form that is not
made to the other is caught here.
"""
import json, re, subprocess, sys

problems = []


def run(args):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit("%s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


def same(where, text, js):
    if text != js:
        problems.append("%s: text %r, json %r" % (where, text, js))


def tags_text(tags):
    """su_tags__format: key=value, keys sorted, comma-separated."""
    return ",".join("%s=%s" % (k, tags[k]) for k in sorted(tags))


SLOT = re.compile(r"^  slice +(\d+)-(\d+) +(?:(free)|(\S+) +(\S+) +(active|draining)(?: until (\d+))?)$")


def slot_fields(m):
    lo, hi, free, server, addr, state, until = m.groups()
    return {"slice": [int(lo), int(hi)], "server": server, "server_addr": addr, "state": state,
            "deadline": int(until) if until else None, "free": bool(free)}


def compare_slot(where, t, j):
    for k in ("slice", "server", "server_addr", "state"):
        same("%s %s" % (where, k), t[k], j.get(k))
    same("%s deadline" % where, t["deadline"], j.get("deadline"))


def who(su, plan, target):
    text = run([su, "who", "--plan", plan, target]).splitlines()
    js = json.loads(run([su, "who", "--plan", plan, target, "--json"]))
    if ":" in target:
        m = re.match(r"^(\S+):(\d+)  dc (\S+)$", text[0])
        if not m:
            return problems.append("who: first line %r" % text[0])
        same("who ip", m.group(1), js["ip"])
        same("who port", int(m.group(2)), js["port"])
        same("who dc", m.group(3), js["dc"])
        s = SLOT.match(text[1])
        if not s:
            return problems.append("who: slot line %r" % text[1])
        compare_slot("who slot", slot_fields(s), js)
        return
    m = re.match(r"^(\S+)  dc (\S+) \(router (\S+)\)  (active|draining)(?: until (\d+))?$", text[0])
    if not m:
        return problems.append("who: first line %r" % text[0])
    same("who ip", m.group(1), js["ip"])
    same("who dc", m.group(2), js["dc"])
    same("who router", m.group(3), js.get("router"))
    same("who state", m.group(4), js["state"])
    same("who deadline", int(m.group(5)) if m.group(5) else None, js.get("deadline"))
    same("who tags", text[1], "  tags " + tags_text(js["tags"]))
    owned = []
    for line in text[2:]:
        s = SLOT.match(line)
        if not s:
            problems.append("who: slot line %r" % line)
        elif not s.group(3):
            owned.append(slot_fields(s))
    same("who owned slices", len(owned), len(js["slices"]))
    for i, (t, j) in enumerate(zip(owned, js["slices"])):
        compare_slot("who slice %d" % i, t, j)


def show(su, plan, args):
    text = run([su, "show", "--plan", plan] + args).splitlines()
    js = json.loads(run([su, "show", "--plan", plan, "--json"] + args))
    same("show header", text[0].split(), ["IP", "SLICE", "DC", "SERVER", "STATE", "TAGS"])
    rows = text[1:]
    same("show rows", len(rows), len(js))
    for i, (line, j) in enumerate(zip(rows, js)):
        f = line.split()
        if len(f) != 6:
            problems.append("show row %d: %r" % (i, line))
            continue
        lo, hi = f[1].split("-")
        same("show row %d ip" % i, f[0], j["ip"])
        same("show row %d slice" % i, [int(lo), int(hi)], j["slice"])
        same("show row %d dc" % i, f[2], j["dc"])
        same("show row %d server" % i, f[3], j["server"])
        same("show row %d state" % i, f[4], j["state"])
        same("show row %d tags" % i, f[5], tags_text(j["tags"]))


DIFF = re.compile(r"^(.) (ip|slot) +(\d+\.\d+\.\d+\.\d+)(?::(\d+)-(\d+))?  (\w+)(?: (\S+) -> (\S+)| (\S+))?(?: until (\d+))?$")
MARKS = {"appeared": "+", "gone": "-", "moved": "~", "draining": "!", "drained": "-", "assigned": "+",
         "freed": "-", "reassigned": "~", "reactivated": "~"}


def diff(su, old, new):
    text = run([su, "diff", old, new]).splitlines()
    js = json.loads(run([su, "diff", "--json", old, new]))
    lines, summary = text[:-1], text[-1]
    same("diff changes", len(lines), len(js["changes"]))
    for i, (line, j) in enumerate(zip(lines, js["changes"])):
        m = DIFF.match(line)
        if not m:
            problems.append("diff line %d: %r" % (i, line))
            continue
        mark, what, ip, lo, hi, change, frm, to, one, until = m.groups()
        same("diff %d mark" % i, mark, MARKS.get(j["change"]))
        same("diff %d what" % i, what, j["what"])
        same("diff %d ip" % i, ip, j["ip"])
        same("diff %d slice" % i, [int(lo), int(hi)] if lo else None, j.get("slice"))
        same("diff %d change" % i, change, j["change"])
        if one is not None:
            same("diff %d owner" % i, one, j["from"] if j["from"] is not None else j["to"])
            same("diff %d only one of from/to" % i, (j["from"] is None) != (j["to"] is None), True)
        else:
            same("diff %d from" % i, frm, j["from"])
            same("diff %d to" % i, to, j["to"])
        same("diff %d deadline" % i, int(until) if until else None, j.get("deadline"))
    m = re.match(r"^serial (\d+) -> (\d+): (.*)$", summary)
    if not m:
        return problems.append("diff summary %r" % summary)
    same("diff old serial", int(m.group(1)), js["old_serial"])
    same("diff new serial", int(m.group(2)), js["new_serial"])
    counts = {} if m.group(3) == "no changes" else {
        name: int(n) for n, name in (part.split(" ", 1) for part in m.group(3).split(", "))}
    same("diff counts", counts, {k: v for k, v in js["counts"].items() if v})


def geofeed(su, plan):
    text = [l for l in run([su, "geofeed", "--plan", plan]).splitlines() if not l.startswith("#")]
    js = json.loads(run([su, "geofeed", "--plan", plan, "--json"]))
    same("geofeed lines", len(text), len(js))
    for i, (line, j) in enumerate(zip(text, js)):
        same("geofeed line %d" % i, line.split(","),
             [j["prefix"], j["country"], j["region"], j["city"], j["postal"]])


def plan(su, fleet, args):
    args = ["--fleet", fleet, "--check", "--cost"] + args
    text = run([su, "plan"] + args).splitlines()
    js = json.loads(run([su, "plan", "--json"] + args))
    m = re.match(r"^plan serial (\d+) \(checked, not written\)( \(unchanged\))?$", text[0])
    if not m:
        return problems.append("plan first line %r" % text[0])
    same("plan serial", int(m.group(1)), js["serial"])
    same("plan changed", not m.group(2), js["changed"])
    m = re.match(r"^  ports (\d+)-(\d+) in slices of (\d+): (\d+) slices per IP; drain (\d+)s$", text[1])
    if not m:
        return problems.append("plan ports line %r" % text[1])
    same("plan ports", [int(m.group(1)), int(m.group(2))], js.get("ports"))
    same("plan slice size", int(m.group(3)), js.get("slice_size"))
    same("plan slices per ip", int(m.group(4)), js["slices_per_ip"])
    same("plan drain", int(m.group(5)), js.get("drain"))
    demands, per_dc, section = [], [], None
    for line in text[2:]:
        f = line.split()
        if f[:2] == ["DC", "TAG-SET"]:
            section = demands
        elif f[:2] == ["DC", "SERVERS"]:
            section = per_dc
        elif not f or line.startswith("cost:"):
            section = None
        elif section is not None:
            section.append(f)
    same("plan demands", len(demands), len(js["demands"]))
    for k, (f, j) in enumerate(zip(demands, js["demands"])):
        same("plan demand %d" % k, f, [j["dc"], tags_text(j["tags"]), str(j["servers"]),
                                       str(j["slices_per_server"]), str(j["ips"])])
    same("plan per-dc rows", len(per_dc), len(js.get("per_dc", [])))
    for k, (f, j) in enumerate(zip(per_dc, js.get("per_dc", []))):
        want = [j["dc"], str(j["servers"]), str(j["ips"]), str(j["per_server"]), str(j["draining"])]
        same("plan per-dc %d" % k, f, want + (["(retired)"] if j["retired"] else []))
    rest = "\n".join(text)
    m = re.search(r"cost: (\d+) egress IPv4 addresses in use \((\d+) draining\); one IP per server per\n"
                  r" +tag-set would need (\d+) \(([\d.]+)% saved\); lower bound (\d+)\n"
                  r"slices: (\d+) active, (\d+) draining, (\d+) free", rest)
    if not m:
        return problems.append("plan cost lines not found")
    c, s = js["cost"], js["slices"]
    same("plan cost", [int(x) for x in m.group(1, 2, 3, 5)],
         [c["active_ips"], c["draining_ips"], c["per_server_ips"], c["lower_bound"]])
    saved = 100.0 * (1 - c["active_ips"] / c["per_server_ips"]) if c["per_server_ips"] else 0
    same("plan saving", m.group(4), "%.1f" % saved)
    same("plan slices", [int(x) for x in m.group(6, 7, 8)], [s["active"], s["draining"], s["free"]])


def main():
    su, cmd, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "who":
        who(su, rest[0], rest[1])
    elif cmd == "show":
        show(su, rest[0], rest[1:])
    elif cmd == "diff":
        diff(su, rest[0], rest[1])
    elif cmd == "geofeed":
        geofeed(su, rest[0])
    elif cmd == "plan":
        plan(su, rest[0], rest[1:])
    else:
        sys.exit("unknown command " + cmd)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
