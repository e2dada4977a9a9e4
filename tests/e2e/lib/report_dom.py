#!/usr/bin/env python3
"""report_dom.py DOM.html: the facts of a `softunicast report` page as the
browser serialised it (chromium --dump-dom), as one JSON object:
  slots        number of <rect class="slot">
  states       {state: count}
  dc_colours   {dc: colour} from the legend
  fills        {dc: [fills of its active slots]}
  draining_fills  fills of draining slots
  ips          distinct data-ip of the slots
  cost         {bar id: data-value}
  skipped      text of the "rows not drawn" notes"""
import json, sys
from html.parser import HTMLParser


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.f = {"slots": 0, "states": {}, "dc_colours": {}, "fills": {}, "draining_fills": [],
                  "ips": set(), "cost": {}, "skipped": []}
        self.in_skipped = False

    def handle_starttag(self, tag, attrs):
        a, f = dict(attrs), self.f
        cls = (a.get("class") or "").split()
        if tag == "rect" and "slot" in cls:
            f["slots"] += 1
            st = a.get("data-state")
            f["states"][st] = f["states"].get(st, 0) + 1
            f["ips"].add(a.get("data-ip"))
            if st == "active":
                f["fills"].setdefault(a.get("data-dc"), set()).add(a.get("fill"))
            elif st == "draining":
                f["draining_fills"].append(a.get("fill"))
        elif tag == "tr" and "dc" in cls:
            f["dc_colours"][a.get("data-dc")] = a.get("data-colour")
        elif tag == "rect" and (a.get("id") or "").startswith("cost-"):
            f["cost"][a["id"]] = int(a.get("data-value"))
        elif tag == "p" and "skipped" in cls:
            self.in_skipped = True

    def handle_data(self, data):
        if self.in_skipped:
            self.f["skipped"].append(data.strip())
            self.in_skipped = False


p = Page()
p.feed(open(sys.argv[1], encoding="utf-8").read())
f = p.f
f["ips"] = sorted(f["ips"])
f["fills"] = {k: sorted(v) for k, v in f["fills"].items()}
print(json.dumps(f))
