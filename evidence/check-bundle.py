#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Check an evidence bundle, and write its manifest.

    evidence/check-bundle.py OUT [--manifest]

Every href and src of every HTML file in OUT (index.html, and the coverage reports under
raw/) must name a file inside OUT: the bundle is read offline, from a tarball, so a link
that leaves it or names nothing is a defect. Links to the web (http, https, mailto) are
counted and allowed only outside index.html (the coverage tools' footers link to their
home pages). With --manifest, SHA256SUMS is first written over every other file, in
sha256sum -c's format (index.html links to it).
"""
import hashlib
import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

OUT = sys.argv[1]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v is not None:
                self.links.append(v)
            if k in ("id", "name") and v:
                self.ids.add(v)


if "--manifest" in sys.argv[2:]:
    lines = []
    for dp, _, fs in os.walk(OUT):
        for fn in fs:
            path = os.path.join(dp, fn)
            rel = os.path.relpath(path, OUT)
            if rel == "SHA256SUMS":
                continue
            with open(path, "rb") as f:
                lines.append((rel, hashlib.sha256(f.read()).hexdigest()))
    with open(os.path.join(OUT, "SHA256SUMS"), "w") as f:
        for rel, h in sorted(lines):
            f.write("%s  %s\n" % (h, rel))
    print("check-bundle: SHA256SUMS lists %d files" % len(lines))

bad, web, checked, pages = [], 0, 0, 0
ids_of = {}
for dp, _, fs in os.walk(OUT):
    for fn in sorted(fs):
        if not fn.endswith(".html"):
            continue
        page = os.path.join(dp, fn)
        pages += 1
        p = Links()
        with open(page, encoding="utf-8", errors="replace") as f:
            p.feed(f.read())
        ids_of[os.path.abspath(page)] = p.ids
        for href in p.links:
            u = urlsplit(href)
            if u.scheme in ("http", "https", "mailto"):
                web += 1
                if os.path.relpath(page, OUT) == "index.html":
                    bad.append((page, href, "index.html must not need the network"))
                continue
            if u.scheme == "data" or href.startswith("javascript:"):
                continue
            if u.scheme:
                bad.append((page, href, "unexpected scheme"))
                continue
            checked += 1
            target = os.path.abspath(os.path.join(dp, unquote(u.path))) if u.path else os.path.abspath(page)
            if not target.startswith(os.path.abspath(OUT) + os.sep):
                bad.append((page, href, "leaves the bundle"))
            elif not os.path.exists(target):
                bad.append((page, href, "no such file"))
            elif u.fragment and target.endswith(".html"):
                ids_of.setdefault(("frag", target), []).append((page, href, u.fragment))

# Fragments are checked once every page's ids are known.
for key, uses in list(ids_of.items()):
    if isinstance(key, tuple):
        for page, href, frag in uses:
            if target_ids := ids_of.get(key[1]):
                if frag not in target_ids:
                    bad.append((page, href, "no such anchor"))

if pages == 0 or not os.path.exists(os.path.join(OUT, "index.html")):
    sys.exit("check-bundle: %s has no index.html" % OUT)
for page, href, why in bad:
    print("check-bundle: %s: %s: %s" % (os.path.relpath(page, OUT), href, why))
if bad:
    sys.exit("check-bundle: %d bad links" % len(bad))
print("check-bundle: %d pages, %d links inside the bundle resolve (%d to the web, outside index.html)"
      % (pages, checked, web))

