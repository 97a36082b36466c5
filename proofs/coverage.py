#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""What share of the library the proofs reach, in lines (proofs/README.md, "Coverage").

Usage: proofs/coverage.py WP_FUNCTION... -- EVA_LOG EVA_FILE... [-- EVA_LOG EVA_FILE...]
       proofs/coverage.py --unreached EVA_LOG[,EVA_LOG...] FILE...  (the functions of
       FILE... that none of the analyses of the EVA_LOGs analysed, one a line: eva.sh
       fails on any)

The library's lines are the non-blank lines of src/**/*.c that are not only comment.
A line counts for WP when it lies in a function of WP_FUNCTION in src/core/ (the
functions that proofs/wp.sh proves, each with its ACSL contract: lib.sh's
core_functions); for Eva when it lies in a function of one of the EVA_FILEs (the library
files of an analysis) that Eva analysed, as the metrics plugin lists them at the end of
that analysis's EVA_LOG ("Statements analyzed by Eva"); once, however many analyses
reach it. The files matter: names repeat across the tree
(every OS shim defines sm_os_mmap, several files a static map_anon), and Eva analysed
only the ones it was given. A function's lines run from its first header
line to its closing brace, the brace-on-its-own-line layout of this tree.
"""
import glob
import re
import sys


def code_lines(text):
    """The text's lines with comments blanked (line structure kept)."""
    out, i, n = [], 0, len(text)
    buf = []
    state = None
    while i < n:
        c = text[i]
        if state is None:
            if text.startswith('/*', i):
                state, i = 'block', i + 2
                continue
            if text.startswith('//', i):
                state, i = 'line', i + 2
                continue
            if c in '"\'':
                state = c
            buf.append(c)
        elif state == 'block':
            if text.startswith('*/', i):
                state, i = None, i + 2
                continue
            if c == '\n':
                buf.append(c)
        elif state == 'line':
            if c == '\n':
                state = None
                buf.append(c)
        else:  # in a string or character literal
            buf.append(c)
            if c == '\\' and i + 1 < n:
                buf.append(text[i + 1])
                i += 1
            elif c == state:
                state = None
        i += 1
    out = ''.join(buf).split('\n')
    return out


def functions(lines):
    """(name, first, last) of each function definition: header to closing brace."""
    found, i = [], 0
    while i < len(lines):
        if lines[i] == '{':
            # the header: the lines above, back to a blank line or the end of a statement
            j = i - 1
            while j > 0 and lines[j - 1].strip() and not lines[j - 1].rstrip().endswith((';', '}')) \
                    and not lines[j - 1].startswith('#'):
                j -= 1
            # an attribute before the name (burn.c's noinline) is not the function
            head = re.sub(r'__attribute__\s*\(\(.*?\)\)', '', ' '.join(lines[j:i]))
            m = re.search(r'([A-Za-z_][A-Za-z_0-9]*)\s*\(', head)
            k = i
            while k < len(lines) and lines[k] != '}':
                k += 1
            if m and '=' not in head.split('(')[0]:
                found.append((m.group(1), j, k))
            i = k
        i += 1
    return found


def test_only(lines):
    """The line numbers inside #if defined(SM_FAULT_INJECTION) blocks: the hooks of the
    test and fuzz flavours, which the release build, and so Eva, does not compile."""
    inside, depth = set(), 0
    for i, line in enumerate(lines):
        d = line.strip()
        if depth:
            if d.startswith('#if'):
                depth += 1
            elif d.startswith('#endif'):
                depth -= 1
            inside.add(i)
        elif re.match(r'#\s*if(def\s+|\s+defined\s*\(?\s*)SM_FAULT_INJECTION\b', d):
            depth = 1
            inside.add(i)
    return inside


def analysed(log):
    """The functions that the metrics plugin lists as analysed by Eva in log."""
    eva = set()
    with open(log, encoding='utf-8', errors='replace') as f:
        on = False
        for line in f:
            if line.startswith('[metrics] Statements analyzed by Eva'):
                on = True
            elif on and line.startswith('['):
                on = False
            elif on:
                m = re.match(r'\s+([A-Za-z_][A-Za-z_0-9]*): \d+ stmts out of', line)
                if m:
                    eva.add(m.group(1))
    return eva


def main():
    if sys.argv[1] == '--unreached':
        eva = set().union(*(analysed(log) for log in sys.argv[2].split(',')))
        for path in sys.argv[3:]:
            with open(path, encoding='utf-8') as f:
                lines = code_lines(f.read())
            hooks = test_only(lines)
            for name, first, _ in functions(lines):
                # SMI_VG_AT_START: Valgrind's client requests, empty and never
                # called outside the Valgrind build (src/vg.h)
                if name not in eva and name != 'SMI_VG_AT_START' and first not in hooks:
                    print('%s: %s' % (path, name))
        return
    groups = ' '.join(sys.argv[1:]).split(' -- ')
    wp = set(groups[0].split())
    eva = set()  # (path, function) that some analysis reached in one of its own files
    for group in groups[1:]:
        log, *files = group.split()
        eva |= {(path, name) for name in analysed(log) for path in files}
    total = in_wp = in_eva = 0
    for path in sorted(glob.glob('src/**/*.c', recursive=True)):
        with open(path, encoding='utf-8') as f:
            lines = code_lines(f.read())
        counted = [bool(l.strip()) for l in lines]
        total += sum(counted)
        for name, first, last in functions(lines):
            n = sum(counted[first:last + 1])
            if name in wp and path.startswith('src/core/'):
                in_wp += n
            if (path, name) in eva:
                in_eva += n
    print('coverage: %d library lines (src/**/*.c, non-blank, non-comment); '
          'in WP-proved functions %d (%.1f%%); in functions Eva analyses %d (%.1f%%)'
          % (total, in_wp, 100.0 * in_wp / total, in_eva, 100.0 * in_eva / total))


main()
