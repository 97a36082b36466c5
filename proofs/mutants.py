#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Generate the mutants of the proven core, systematically, for proofs/mutate.sh.

  proofs/mutants.py FUNCTIONS OUTDIR

FUNCTIONS holds "FILE FUNCTION" lines, the core's functions as Frama-C lists them
(proofs/lib.sh, core_functions), so that a new core function gets mutants with no change
here. For each function, every operator below is applied at every place it fits in the
function's body (code only: comments and ACSL annotations are left alone), one change per
mutant:

  cmp-flip     a comparison negated: < and >=, <= and >, == and != swapped
  cmp-bound    a comparison's bound moved by one: < and <=, > and >= swapped
  const        an integer literal plus one; a constant macro of the core (core.h or
               the file) plus one; an enumerator of the core's enums or of sm_status
               replaced by the next one of its enum
  arith        a binary operator swapped: + and -, * and /, % to /, | to &, ^ to &,
               & to |, >> to <<, << to >>, a ?: condition's two results exchanged
  return       a return removed that is not the function's last statement (early return)
  case         a case label removed (its values go to the next label or past the
               switch); the label's enumerator is not replaced, which would repeat a
               label

Each mutant is OUTDIR/NNN/FILE (the mutated copy), and the file "list" in OUTDIR has one
line per mutant, tab-separated: NNN, file, function, operator, the original line and the mutated line (trimmed).
The pair of lines identifies a mutant across edits of unrelated lines
(proofs/mutants-equivalent.tsv lists the survivors by it).
"""
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(TOP, path), encoding="utf-8") as f:
        return f.read()


def code_mask(text):
    """True for each character of text that is C code (not a comment)."""
    mask = [True] * len(text)
    i = 0
    while i < len(text):
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = len(text) if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = len(text) if j < 0 else j
        else:
            i += 1
            continue
        for k in range(i, j):
            mask[k] = False
        i = j
    return mask


def enums():
    """Each enumerator -> the next one of its enum (the last one -> the first)."""
    nxt = {}
    src = read("src/core/core.h") + read("include/securemem/status.h")
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    for body in re.findall(r"enum\s*\w*\s*\{([^}]*)\}", src):
        names = [re.match(r"\s*(\w+)", e).group(1) for e in body.split(",") if e.strip()]
        for a, b in zip(names, names[1:] + names[:1]):
            nxt[a] = b
    return nxt


def macros(text):
    """The object-like macros of core.h and of text whose value is a number."""
    src = read("src/core/core.h") + text
    return set(re.findall(r"^#define ([A-Z][A-Z0-9_]*) +[(0-9]", src, re.M))


def body_span(text, fn):
    """(start, end) of the body of fn's definition in text, braces included."""
    m = re.search(r"^[A-Za-z][^;\n]*\b%s\(" % re.escape(fn), text, re.M)
    while m and text[m.end():].split("{", 1)[0].count(";"):
        m = re.compile(r"^[A-Za-z][^;\n]*\b%s\(" % re.escape(fn), re.M).search(text, m.end())
    if not m:
        sys.exit("mutants: no definition of %s found" % fn)
    start = text.index("{", m.end())
    depth, i, mask = 0, start, code_mask(text)
    while True:
        if mask[i]:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return start, i + 1
        i += 1


CMP_FLIP = {"<": ">=", ">=": "<", "<=": ">", ">": "<=", "==": "!=", "!=": "=="}
CMP_BOUND = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
ARITH = {"+": "-", "-": "+", "*": "/", "/": "*", "%": "/", "|": "&", "^": "&", "&": "|",
         ">>": "<<", "<<": ">>"}
# A binary operator: spaced on both sides, as the tree writes every one (a unary * or &
# and ++ are never followed by a space); compound assignments (|=) are included.
BINOP = re.compile(r"(?<= )(<<|>>|<=|>=|==|!=|<|>|\+|-|\*|/|%|\||\^|&)(=?)(?= )")
INT = re.compile(r"(?<![\w.])(0[xX][0-9a-fA-F]+|[0-9]+)([uU]?)(?![\w.])")
IDENT = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
TERNARY = re.compile(r"\? ([^:;]+?) : ([^;]+?);")


def mutations(text, start, end, nxt, consts):
    """(operator, position, length, replacement) for every mutation inside the body."""
    mask = code_mask(text)
    body = text[start:end]
    out = []
    for m in BINOP.finditer(body):
        pos = start + m.start()
        if not mask[pos]:
            continue
        op, assign = m.group(1), m.group(2)
        if op in CMP_FLIP and not assign:
            out.append(("cmp-flip", pos, len(op), CMP_FLIP[op]))
            if op in CMP_BOUND:
                out.append(("cmp-bound", pos, len(op), CMP_BOUND[op]))
        elif op in ARITH:
            out.append(("arith", pos, len(op), ARITH[op]))
    for m in INT.finditer(body):
        pos = start + m.start()
        if mask[pos]:
            v = int(m.group(1), 0) + 1
            lit = (hex(v) if m.group(1).lower().startswith("0x") else str(v)) + m.group(2)
            out.append(("const", pos, len(m.group(0)), lit))
    labels = [m for m in re.finditer(r"case (\w+):", body) if mask[start + m.start()]]
    for m in labels:
        out.append(("case", start + m.start(), m.end() - m.start(), ""))
    in_label = {start + m.start(1) for m in labels}
    for m in IDENT.finditer(body):
        pos = start + m.start()
        if pos in in_label:
            continue
        if mask[pos] and m.group(0) in nxt:
            out.append(("const", pos, len(m.group(0)), nxt[m.group(0)]))
        elif mask[pos] and m.group(0) in consts:
            out.append(("const", pos, len(m.group(0)), "(%s + 1u)" % m.group(0)))
    for m in TERNARY.finditer(body):
        pos = start + m.start()
        if mask[pos]:
            out.append(("arith", pos, len(m.group(0)),
                        "? %s : %s;" % (m.group(2), m.group(1))))
    # early returns: every return but the one that ends the body
    rets = [m for m in re.finditer(r"\breturn\b[^;]*;", body) if mask[start + m.start()]]
    last = body.rstrip()[:-1].rstrip()
    for m in rets:
        if start + m.end() != start + len(last):
            out.append(("return", start + m.start(), m.end() - m.start(), ";"))
    return sorted(out, key=lambda x: (x[1], x[0]))


def line_at(text, pos):
    a = text.rfind("\n", 0, pos) + 1
    b = text.find("\n", pos)
    return a, (len(text) if b < 0 else b)


def main():
    functions, outdir = sys.argv[1], sys.argv[2]
    nxt = enums()
    n = 0
    rows = []
    with open(functions, encoding="utf-8") as f:
        pairs = [line.split() for line in f if line.strip()]
    for path, fn in pairs:
        text = read(path)
        start, end = body_span(text, fn)
        for op, pos, length, repl in mutations(text, start, end, nxt, macros(text)):
            new = text[:pos] + repl + text[pos + length:]
            a, b = line_at(text, pos)
            before = text[a:b].strip()
            after = new[a:b + len(repl) - length].strip()
            after = after or "(the line removed)"
            if before == after:
                continue
            n += 1
            d = os.path.join(outdir, "%03d" % n)
            os.makedirs(d)
            with open(os.path.join(d, os.path.basename(path)), "w", encoding="utf-8") as f:
                f.write(new)
            rows.append("%03d\t%s\t%s\t%s\t%s\t%s" % (n, path, fn, op, before, after))
    with open(os.path.join(outdir, "list"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")


main()
