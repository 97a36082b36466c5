#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Turn the raw results that evidence/collect.sh gathered into the auditor's bundle.

    evidence/render.py RAW OUT TOP

RAW is collect.sh's directory (see evidence/README.md for its layout; tests/evidence/raw
is a small synthetic one), OUT the bundle to write, TOP the source tree (for the
requirements traceability, which is derived by grepping it). The bundle holds index.html,
one JUnit XML file per suite, summary.tsv, traceability.tsv, the plots, and RAW itself
under raw/, so that every number on the page links to the log it came from. A missing
input makes its section say "not collected" rather than failing: a partial run
(EVIDENCE_STAGES) still gives a bundle, and the page says what it lacks.
"""
import glob
import html
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

RAW, OUT, TOP = sys.argv[1], sys.argv[2], sys.argv[3]


def read(path, default=""):
    try:
        with open(os.path.join(RAW, path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def tsv(path):
    rows = []
    for line in read(path).splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def esc(s):
    return html.escape(str(s))


def link(href, text):
    return '<a href="%s">%s</a>' % (esc(href), esc(text))


def table(head, rows, cls=""):
    out = ['<table class="%s"><tr>' % cls + "".join("<th>%s</th>" % esc(h) for h in head) + "</tr>"]
    for r in rows:
        # A cell is escaped text unless it is already markup (a tuple ("html", s)).
        cells = []
        for c in r:
            cells.append(c[1] if isinstance(c, tuple) else esc(c))
        out.append("<tr>" + "".join("<td>%s</td>" % c for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def raw_link(path, text=None):
    """A link into the copy of RAW, or plain text when that file was not collected."""
    if os.path.exists(os.path.join(RAW, path)):
        return ("html", link("raw/" + path, text or path))
    return ("html", '<span class="missing">%s (not collected)</span>' % esc(text or path))


# ---- suites: JUnit XML and the summary table ----------------------------------------

SKIP_LINE = re.compile(r"^\[SKIP\] (\S+)::(\S+): (.*)$")


def junit_from_criterion(xml_text, log):
    """Criterion's --xml report is JUnit already; count it. Its <skipped/> carries no
    reason, so the reason comes from the --verbose log's "[SKIP] suite::test: why"."""
    root = ET.fromstring(xml_text)
    why_of = {}
    for m in map(SKIP_LINE.match, log.splitlines()):
        if m:
            why_of[(m.group(1), m.group(2))] = m.group(3).strip()
    run = passed = skipped = failed = 0
    reasons = []
    for ts in root.iter("testsuite"):
        for tc in ts.iter("testcase"):
            run += 1
            sk = tc.find("skipped")
            if sk is not None:
                skipped += 1
                key = (ts.get("name", ""), tc.get("name", ""))
                why = why_of.get(key) or (sk.get("message") or "").strip() or "no reason given"
                reasons.append("%s/%s: %s" % (key[0], key[1], why))
                continue
            if tc.find("failure") is not None or tc.find("error") is not None:
                failed += 1
            else:
                passed += 1
    return run, passed, skipped, failed, reasons


def junit_from_target(name, status, seconds, reason, log):
    """A suite that make runs as one target: one test case, its log the failure text."""
    suite = ET.Element("testsuite", name=name, tests="1", time=str(seconds),
                       failures="1" if status == "fail" else "0",
                       skipped="1" if status == "skip" else "0")
    tc = ET.SubElement(suite, "testcase", classname="make", name=name, time=str(seconds))
    if status == "fail":
        ET.SubElement(tc, "failure", message="make %s failed" % name).text = log[-4000:]
    elif status == "skip":
        ET.SubElement(tc, "skipped", message=reason or "not run")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n' +
            ET.tostring(suite, encoding="unicode") + "\n</testsuites>\n")


def suites():
    os.makedirs(os.path.join(OUT, "junit"), exist_ok=True)
    rows, tsv_rows = [], []
    for st in tsv("stages.tsv"):
        st += [""] * (5 - len(st))
        name, status, seconds, reason, kind = st[:5]
        crit = read("%s/criterion.xml" % name)
        if crit:
            run, passed, skipped, failed, reasons = junit_from_criterion(crit, read(name + "/log"))
            with open(os.path.join(OUT, "junit", name + ".xml"), "w") as f:
                f.write(crit)
            if status == "fail" and failed == 0:
                failed = 1  # the run itself failed (a crash, a sanitizer log) beyond its tests
        else:
            run = 1
            passed = 1 if status == "pass" else 0
            skipped = 1 if status == "skip" else 0
            failed = 1 if status == "fail" else 0
            reasons = [reason] if status == "skip" else []
            with open(os.path.join(OUT, "junit", name + ".xml"), "w") as f:
                f.write(junit_from_target(name, status, seconds, reason, read(name + "/log")))
        tsv_rows.append([name, status, run, passed, skipped, failed, seconds, "; ".join(reasons)])
        rows.append([name, ("html", '<span class="%s">%s</span>' % (esc(status), esc(status))),
                     run, passed, skipped, failed, seconds,
                     ("html", link("junit/%s.xml" % name, "JUnit") + " " +
                      raw_link(name + "/log", "log")[1]),
                     ("html", "<br>".join(esc(r) for r in reasons))])
    with open(os.path.join(OUT, "summary.tsv"), "w") as f:
        f.write("suite\tstatus\trun\tpassed\tskipped\tfailed\tseconds\tskip reasons\n")
        for r in tsv_rows:
            f.write("\t".join(str(c) for c in r) + "\n")
    return table(["suite", "status", "run", "passed", "skipped", "failed", "seconds", "results",
                  "skips and their reasons"], rows), tsv_rows


# ---- proofs ---------------------------------------------------------------------------

def proof_files(d):
    """The results files under d: (machdep or None, path relative to d). proofs/wp.sh keeps
    one flat set (the default machdep), or one subfolder per machdep; both are read, so
    that the bundle follows whichever layout the tree has."""
    out = []
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".json"):
            out.append((None, fn))
        elif os.path.isdir(os.path.join(d, fn)):
            out.extend((fn, fn + "/" + g) for g in sorted(os.listdir(os.path.join(d, fn)))
                       if g.endswith(".json"))
    return out


def proofs():
    d = os.path.join(RAW, "proofs", "results")
    rows, per_machdep = [], {}
    if os.path.isdir(d):
        for machdep, fn in proof_files(d):
            with open(os.path.join(d, fn)) as f:
                j = json.load(f)
            bp = j.get("by_prover", {})
            md = j.get("machdep") or machdep or "x86_64 (default)"
            rows.append([j.get("function", fn), j.get("file", ""), md,
                         j.get("goals", ""), j.get("proved", ""),
                         ", ".join("%s %s" % (k, v) for k, v in bp.items() if v),
                         raw_link("proofs/results/" + fn, "json")])
            t = per_machdep.setdefault(md, [0, 0, 0])
            t[0] += int(j.get("proved", 0))
            t[1] += int(j.get("goals", 0))
            t[2] += 1
    if not rows:
        return '<p class="missing">Proof results not collected.</p>'
    total = sum(int(r[3]) for r in rows)
    proved = sum(int(r[4]) for r in rows)
    parts = ["<p>WP: <b>%d / %d</b> goals proved over %d functions and lemma sets (%s).</p>" % (
                 proved, total, len(rows), raw_link("proofs/summary", "summary")[1]),
             table(["machdep", "goals proved", "functions and lemma sets"],
                   [[md, "%d / %d" % (t[0], t[1]), t[2]] for md, t in sorted(per_machdep.items())]),
             table(["function", "file", "machdep", "goals", "proved", "by prover", ""], rows)]
    # proofs/mutate.sh: "mutate: NNN FUNCTION OPERATOR GOAL-OR-SURVIVED CHANGE", one row
    # per generated mutant; earlier logs: "mutate: killed: NAME  P / T goals proved  S s",
    # or SURVIVED.
    mrows = []
    for line in read("proofs/mutation.log").splitlines():
        g = re.match(r"mutate: (\d{3}|table) +(\S+) +(\S+) +(\S+) +(.*)$", line)
        m = re.match(r"mutate: killed: (.*?)\s+(\d+) / (\d+)\s+goals proved\s+([\d.]+) s", line)
        if g:
            survived = g.group(4) == "SURVIVED"
            mrows.append(["%s %s (%s): %s" % (g.group(1), g.group(2), g.group(3), g.group(5)),
                          "SURVIVED" if survived else "killed by " + g.group(4), "", ""])
        elif m:
            mrows.append([m.group(1), "killed", "%s / %s" % (m.group(2), m.group(3)), m.group(4)])
        elif line.startswith("mutate: SURVIVED:"):
            mrows.append([line[len("mutate: SURVIVED: "):], "SURVIVED", "", ""])
    if mrows:
        parts.append("<p>Mutants that WP must reject (%s):</p>" % raw_link("proofs/mutation.log", "log")[1])
        parts.append(table(["mutant", "result", "goals proved", "seconds"], mrows))
    else:
        parts.append('<p class="missing">Mutation table not collected.</p>')
    eva = read("proofs/eva-summary.log").strip()
    logs = [l for l in sorted(glob.glob(os.path.join(RAW, "proofs", "eva-*.log")))
            if not l.endswith("eva-summary.log")]
    links = ", ".join(raw_link("proofs/" + os.path.basename(l), os.path.basename(l))[1] for l in logs)
    parts.append("<p>Eva: %s (full reports: %s).</p>" % (esc(eva) if eva else "not collected",
                                                          links or "not collected"))
    return "\n".join(parts)


# ---- fuzzing --------------------------------------------------------------------------

FUZZ_LINE = re.compile(r"^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")


def fuzz(plots):
    d = os.path.join(RAW, "fuzz")
    rows, series = [], {}
    if os.path.isdir(d):
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".log"):
                continue
            h = fn[:-4]
            text = read("fuzz/" + fn)

            def stat(k):
                m = re.findall(r"^stat::%s:\s*(\d+)" % k, text, re.M)
                return m[-1] if m else ""
            pts = [(int(m.group(1)), int(m.group(2))) for m in map(FUZZ_LINE.match, text.splitlines()) if m]
            series[h] = pts
            # The artifacts libFuzzer saved, or failing that the reports in its log.
            crashes = read("fuzz/%s.crashes" % h).strip() or \
                len(re.findall(r"^==\d+==ERROR|^SUMMARY: (Address|Undefined)|Test unit written", text, re.M))
            rows.append([h, stat("number_of_executed_units"), pts[-1][1] if pts else "",
                         pts[-1][0] if pts else "", read("fuzz/%s.corpus" % h).strip(),
                         crashes, raw_link("fuzz/" + fn, "log")])
    if not rows:
        return '<p class="missing">Fuzzing not collected.</p>' + afl()
    png = plot_lines("fuzz-coverage", "executions", "edges covered", series, plots)
    return "<p>libFuzzer (ASan, UBSan):</p>" + table(
        ["harness", "executions", "coverage (edges)", "last sample at exec", "corpus files",
         "crashes", ""], rows) + png + afl()


def afl():
    """AFL++'s runs, from each harness's fuzzer_stats: afl-fuzz exits 0 even when it saved
    crashes, so these counts, not its exit code, say whether a run found any."""
    d = os.path.join(RAW, "fuzz-afl")
    rows = []
    if os.path.isdir(d):
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".stats"):
                continue
            h = fn[:-len(".stats")]
            st = dict((k.strip(), v.strip()) for k, _, v in
                      (line.partition(":") for line in read("fuzz-afl/" + fn).splitlines()) if v)
            rows.append([h, st.get("run_time", ""), st.get("execs_done", ""), st.get("execs_per_sec", ""),
                         st.get("bitmap_cvg", ""), st.get("corpus_count", ""),
                         st.get("saved_crashes", st.get("unique_crashes", "?")),
                         st.get("saved_hangs", st.get("unique_hangs", "?")),
                         raw_link("fuzz-afl/" + fn, "fuzzer_stats")])
    if not rows:
        return '<p class="missing">AFL++ runs not collected.</p>'
    return "<p>AFL++ (afl-clang-fast; crashes and hangs from fuzzer_stats):</p>" + table(
        ["harness", "seconds", "executions", "exec/s", "bitmap coverage", "corpus", "crashes", "hangs", ""],
        rows)


# ---- coverage -------------------------------------------------------------------------

def coverage(plots):
    j = read("coverage/unit.json")
    parts = []
    if j:
        cov = json.loads(j)
        rows, bars = [], []
        for f in sorted(cov.get("files", []), key=lambda f: f["filename"]):
            lp = f.get("line_percent", 0)
            bp = f.get("branch_percent", 0)
            rows.append([f["filename"], "%s/%s" % (f.get("line_covered"), f.get("line_total")), lp,
                         "%s/%s" % (f.get("branch_covered"), f.get("branch_total")), bp])
            bars.append((os.path.basename(f["filename"]), lp, bp))
        parts.append("<p>Unit suite over src/: lines %s%%, branches %s%% (%s).</p>" % (
            cov.get("line_percent"), cov.get("branch_percent"),
            raw_link("coverage/unit-html/index.html", "HTML per file")[1]))
        parts.append(plot_bars("coverage-per-file", "% covered", ["lines", "branches"], bars, plots))
        parts.append(table(["file", "lines", "line %", "branches", "branch %"], rows))
    else:
        parts.append('<p class="missing">Unit coverage not collected.</p>')
    fz = read("coverage/fuzz-report.txt")
    if fz:
        parts.append("<p>Fuzz corpora over src/ (llvm-cov; %s):</p><pre>%s</pre>" % (
            raw_link("coverage/fuzz-html/index.html", "HTML per file")[1], esc(fz)))
    else:
        parts.append('<p class="missing">Fuzz-corpus coverage not collected.</p>')
    return "\n".join(parts)


# ---- bench ----------------------------------------------------------------------------

def bench(plots):
    text = read("bench/log")
    if not text:
        return '<p class="missing">make bench not collected.</p>'
    try:
        with open(os.path.join(RAW, "bench", "results.json"), encoding="utf-8") as f:
            rows = json.load(f)
    except (OSError, ValueError):
        rows = []
    # The rows with a peer and a goal on the ratio to it: one bar each, beside its goal (the
    # peer is in the table below; names alone keep the labels inside the plot).
    bars = [(r["name"], r["ratio"], float(r["goal"].split()[1].rstrip("x")))
            for r in rows if r.get("peer") and r.get("ratio") is not None and r.get("goal")]
    png = plot_bars("bench-ratios", "securemem / peer", ["ratio", "goal"], bars, plots, logy=True) if bars else ""
    met = sum(1 for r in rows if r.get("met") is True)
    goals = sum(1 for r in rows if r.get("met") is not None)
    summary = ("<p>%d of %d goals met (%s).</p>" % (met, goals, raw_link("bench/results.json", "results.json")[1])
               if rows else '<p class="missing">bench/results.json not collected.</p>')
    return summary + png + "<pre>%s</pre>" % esc(text)


# ---- traceability ---------------------------------------------------------------------

def traceability():
    req = re.compile(r"SM-REQ-(\d{3})")
    try:
        files = subprocess.run(["git", "-C", TOP, "ls-files"], capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        files = [os.path.relpath(os.path.join(dp, f), TOP) for dp, _, fs in os.walk(TOP)
                 if "/build" not in dp and "/.git" not in dp for f in fs]
    defined, cited = {}, {}
    for path in files:
        try:
            with open(os.path.join(TOP, path), encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if path == "spec/requirements.md":
            for m in re.finditer(r"\*\*SM-REQ-(\d{3}): ([^*]*)\*\*", text):
                defined[m.group(1)] = m.group(2).strip()
            continue
        area = ("proofs" if path.startswith("proofs/") else
                "tests" if path.startswith(("tests/", "sanitizers/")) else
                "fuzz" if path.startswith("fuzz/") else
                "src" if path.startswith(("src/", "include/")) else None)
        if area is None:
            continue
        for n in set(req.findall(text)):
            cited.setdefault(n, {}).setdefault(area, []).append(path)
    rows, tsv_rows = [], []
    for n in sorted(defined):
        c = cited.get(n, {})
        cells = [", ".join(sorted(c.get(a, []))) for a in ("src", "proofs", "tests", "fuzz")]
        tsv_rows.append(["SM-REQ-" + n, defined[n]] + cells)
        rows.append(["SM-REQ-" + n, defined[n]] + [x or "-" for x in cells])
    with open(os.path.join(OUT, "traceability.tsv"), "w") as f:
        f.write("requirement\ttitle\tsrc\tproofs\ttests\tfuzz\n")
        for r in tsv_rows:
            f.write("\t".join(r) + "\n")
    untested = sum(1 for r in tsv_rows if not r[4] and not r[3] and not r[5])
    return ("<p>%d requirements; %d cited by no test, proof or harness file (the "
            "requirement's own Verified-by line may still name a make target). %s</p>" % (
                len(rows), untested, link("traceability.tsv", "traceability.tsv")) +
            table(["requirement", "title", "src", "proofs", "tests", "fuzz"], rows, "small"))


# ---- plots (gnuplot) ------------------------------------------------------------------

def gnuplot(name, script, data, plots):
    os.makedirs(os.path.join(OUT, "plots"), exist_ok=True)
    dat = os.path.join(OUT, "plots", name + ".dat")
    with open(dat, "w") as f:
        f.write(data)
    png = os.path.join(OUT, "plots", name + ".png")
    full = 'set terminal pngcairo size 1000,560 noenhanced font "sans,9"\nset output "%s"\n%s' % (png, script.replace("@DAT@", dat))
    try:
        subprocess.run(["gnuplot"], input=full, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        plots.append((name, "failed: %s" % e))
        return '<p class="missing">plot %s: gnuplot failed</p>' % esc(name)
    plots.append((name, "ok"))
    return '<p><img src="plots/%s.png" alt="%s"></p>' % (esc(name), esc(name))


def plot_bars(name, ylabel, cols, bars, plots, logy=False):
    data = "".join('"%s" %s\n' % (b[0].replace('"', "'"), " ".join(str(v) for v in b[1:])) for b in bars)
    using = ", ".join("'@DAT@' using %d:xtic(1) title '%s'" % (i + 2, c) for i, c in enumerate(cols))
    # A log scale when the bars span orders of magnitude (bench ratios: 0.02 to 100 and more).
    yrange = "set logscale y\nset yrange [*:*]" if logy else "set yrange [0:*]"
    script = ("set style data histogram\nset style histogram cluster gap 1\nset style fill solid 0.8\n"
              "set xtics rotate by -45\nset ylabel '%s'\n%s\nset key top right\nplot %s\n" % (ylabel, yrange, using))
    return gnuplot(name, script, data, plots)


def plot_lines(name, xlabel, ylabel, series, plots):
    series = {k: v for k, v in series.items() if v}
    if not series:
        return ""
    data = ""
    for k, pts in series.items():
        data += "# %s\n" % k + "".join("%d %d\n" % p for p in pts) + "\n\n"
    plot = ", ".join("'@DAT@' index %d using 1:2 with lines title '%s'" % (i, k) for i, k in enumerate(series))
    script = "set xlabel '%s'\nset ylabel '%s'\nset logscale x\nset key bottom right\nplot %s\n" % (xlabel, ylabel, plot)
    return gnuplot(name, script, data, plots)


# ---- the page -------------------------------------------------------------------------

def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    shutil.copytree(RAW, os.path.join(OUT, "raw"))
    plots = []
    meta = tsv("meta.tsv")
    suite_html, srows = suites()
    sections = [
        ("Build", table(["what", "value"], [[m[0], m[1] if len(m) > 1 else ""] for m in meta]) +
         "<p>%s</p>" % link("raw/meta.tsv", "meta.tsv")),
        ("Suites", suite_html + "<p>%s</p>" % link("summary.tsv", "summary.tsv")),
        ("Proofs (Frama-C WP, mutation, Eva)", proofs()),
        ("Sanitizers and Valgrind", sanitizers()),
        ("Constant time", constant_time()),
        ("Fuzzing", fuzz(plots)),
        ("Coverage", coverage(plots)),
        ("Bench (make bench)", bench(plots)),
        ("Requirements traceability", traceability()),
    ]
    failed = [r[0] for r in srows if r[1] == "fail"]
    verdict = ("<p class='fail'>Failed: %s</p>" % esc(", ".join(failed)) if failed else
               "<p class='pass'>Every collected suite passed.</p>")
    toc = "<ol>" + "".join('<li><a href="#s%d">%s</a></li>' % (i, esc(t)) for i, (t, _) in enumerate(sections)) + "</ol>"
    body = "".join('<h2 id="s%d">%s</h2>\n%s\n' % (i, esc(t), s) for i, (t, s) in enumerate(sections))
    commit = dict((m[0], m[1]) for m in meta if len(m) > 1).get("commit", "?")
    page = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>securemem evidence %(commit)s</title>
<style>
body { font: 14px sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #bbb; padding: 2px 6px; text-align: left; vertical-align: top; }
table.small td { font-size: 12px; }
.pass { color: #070; } .fail { color: #b00; font-weight: bold; } .skip { color: #a60; }
.missing { color: #888; font-style: italic; }
pre { background: #f4f4f4; padding: .5em; overflow-x: auto; font-size: 12px; }
</style></head><body>
<h1>securemem: evidence bundle</h1>
<p>Commit <code>%(commit)s</code>. Read this page first; every table links to the raw
output it was made from (raw/), and SHA256SUMS lists every file of the bundle.</p>
%(verdict)s
%(toc)s
%(body)s
<p>%(manifest)s</p>
</body></html>
""" % {"commit": esc(commit), "verdict": verdict, "toc": toc, "body": body,
       "manifest": link("SHA256SUMS", "SHA256SUMS (manifest)")}
    with open(os.path.join(OUT, "index.html"), "w") as f:
        f.write(page)
    bad = [p for p in plots if p[1] != "ok"]
    if bad:
        sys.exit("render: plots failed: %s" % bad)


def constant_time():
    """The ct lines of make ct's log (the build lines before them are in the log itself)."""
    text = read("ct/log")
    if not text:
        return '<p class="missing">make ct not collected.</p>'
    lines = [l for l in text.splitlines() if l.startswith("ct:")]
    return "<pre>%s</pre><p>%s</p>" % (esc("\n".join(lines)), raw_link("ct/log", "full log")[1])


def sanitizers():
    rows = []
    for st in tsv("stages.tsv"):
        if st[0] in ("asan", "tsan", "memcheck", "helgrind", "drd", "valgrind", "sanitize"):
            rows.append([st[0], st[1], raw_link(st[0] + "/log", "log")])
    supp = []
    d = os.path.join(RAW, "sanitizers")
    if os.path.isdir(d):
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".supp"):
                continue
            text = read("sanitizers/" + fn)
            # Valgrind's entries are {...} blocks, the sanitizers' one line each; each
            # carries its reason in the comment lines above it.
            n = len(re.findall(r"^\{", text, re.M)) or len([l for l in text.splitlines() if l.strip() and not l.startswith("#")])
            supp.append([fn, n, raw_link("sanitizers/" + fn, "file with reasons")])
    out = table(["run", "status", ""], rows) if rows else '<p class="missing">No sanitizer run collected.</p>'
    out += table(["suppression file", "entries", ""], supp) if supp else '<p class="missing">No suppression files collected.</p>'
    return out


if __name__ == "__main__":
    main()
