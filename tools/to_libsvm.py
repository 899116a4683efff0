#!/usr/bin/python3
"""Convert ARFF or CSV data to sparse LibSVM for the MARINA runtime.

Standard library only (run with /usr/bin/python3; no numpy).

Encoding:
  * numeric attributes/columns: one feature each, zeros omitted;
  * nominal ARFF attributes: one-hot, one feature per declared category (a single-value
    nominal such as Weka's {t} gives one 0/1 feature);
  * missing values ('?', or an empty CSV cell): feature absent;
  * zeros are omitted, so d as a LibSVM reader sees it is the largest nonzero column; with
    --full-dim the first row ends with an explicit "D:0" so that d is the declared count;
  * sparse ARFF rows ({index value, ...}): omitted numeric values are 0, omitted nominal values
    are the first declared category (Weka's convention);
  * label: --positive VALUE maps that value to +1 and every other value to -1; without it the
    label values must be one of {-1,+1}, {0,1}, {1,2} (smaller value -> -1).
Features get 1-based indices in attribute order, skipping the label and --drop'ed columns.
"""

import argparse
import csv
import gzip
import io
import math
import os
import sys
import tempfile

NUMERIC_TYPES = {"numeric", "real", "integer"}
ENCODINGS = [(-1.0, 1.0), (0.0, 1.0), (1.0, 2.0)]


class ConvertError(Exception):
    pass


def open_text(path):
    """Opens a text file, gzip'ed or not (decided by the magic bytes, not the name)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except OSError as e:
        raise ConvertError(f"{path}: cannot open: {e.strerror}") from None
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, "r", encoding="utf-8", errors="replace", newline="")


# ---------------------------------------------------------------------------------------------
# ARFF


def split_arff(text, where):
    """Splits an ARFF value list on commas, honouring '...' and "..." quotes with \\ escapes.
    Returns (value, was_quoted) pairs with surrounding blanks removed."""
    out = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "'\"":
            q = text[i]
            i += 1
            buf = []
            while i < n and text[i] != q:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise ConvertError(f"{where}: unterminated quote")
            i += 1
            value, quoted = "".join(buf), True
            while i < n and text[i] in " \t":
                i += 1
        else:
            j = i
            while i < n and text[i] != ",":
                i += 1
            value, quoted = text[j:i].strip(), False
        out.append((value, quoted))
        if i >= n:
            return out
        if text[i] != ",":
            raise ConvertError(f"{where}: expected ',' after {value!r}")
        i += 1


def strip_comment(line):
    """Removes a trailing % comment that is outside quotes."""
    q = None
    i = 0
    while i < len(line):
        c = line[i]
        if q:
            if c == "\\":
                i += 1  # the escaped character cannot close the quote
            elif c == q:
                q = None
        elif c in "'\"":
            q = c
        elif c == "%":
            return line[:i]
        i += 1
    return line


def parse_attribute(rest, where):
    """Parses what follows '@attribute': returns (name, kind, categories)."""
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        q = rest[0]
        i, buf = 1, []
        while i < len(rest) and rest[i] != q:
            if rest[i] == "\\" and i + 1 < len(rest):
                i += 1
            buf.append(rest[i])
            i += 1
        if i >= len(rest):
            raise ConvertError(f"{where}: unterminated quote in attribute name")
        name, rest = "".join(buf), rest[i + 1:].strip()
    else:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ConvertError(f"{where}: attribute without a type")
        name, rest = parts[0], parts[1].strip()
    if rest.startswith("{"):
        close = rest.rfind("}")
        if close < 0:
            raise ConvertError(f"{where}: nominal attribute {name!r} has no closing '}}'")
        cats = [v for v, _ in split_arff(rest[1:close], where)]
        if any(c == "" for c in cats):
            raise ConvertError(f"{where}: empty category in nominal attribute {name!r}")
        return name, "nominal", cats
    kind = rest.split(None, 1)[0].lower() if rest else ""
    if kind in NUMERIC_TYPES:
        return name, "numeric", None
    if kind in ("string", "date", "relational"):
        return name, kind, None
    raise ConvertError(f"{where}: attribute {name!r} has unknown type {rest!r}")


def read_arff(path):
    """Yields ('header', attributes) once, then ('row', line_number, values) for every row,
    values being a dict {attribute position: text} (None for missing)."""
    attrs = []
    in_data = False
    with open_text(path) as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            line = raw.strip().lstrip("\ufeff")
            if not line or line.startswith("%"):
                continue
            if not in_data:
                line = strip_comment(line).strip()
                if not line:
                    continue
                word = line.split(None, 1)[0].lower()
                if word == "@relation":
                    continue
                if word == "@attribute":
                    attrs.append(parse_attribute(line[len("@attribute"):], where))
                    continue
                if word == "@data":
                    if not attrs:
                        raise ConvertError(f"{where}: @data before any @attribute")
                    in_data = True
                    yield ("header", attrs)
                    continue
                raise ConvertError(f"{where}: unexpected header line {line[:40]!r}")
            yield ("row", lineno, parse_arff_row(line, attrs, where))
    if not in_data:
        raise ConvertError(f"{path}: no @data section")


def parse_arff_row(line, attrs, where):
    if line.startswith("{"):
        close = line.find("}")
        if close < 0:
            raise ConvertError(f"{where}: sparse row without closing '}}'")
        values = {}
        # Omitted entries are 0 / the first category.
        for pos, (_, kind, cats) in enumerate(attrs):
            values[pos] = cats[0] if kind == "nominal" else "0"
        body = line[1:close].strip()
        if body:
            for item, _ in split_arff(body, where):
                parts = item.split(None, 1)
                if len(parts) != 2 or not parts[0].isdigit():
                    raise ConvertError(f"{where}: bad sparse entry {item!r} (expected 'index value')")
                pos = int(parts[0])
                if pos >= len(attrs):
                    raise ConvertError(f"{where}: sparse index {pos} >= {len(attrs)} attributes")
                value = parts[1].strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                    values[pos] = value
                else:
                    values[pos] = None if value == "?" else value
        return values
    # A weight "{w}" after the values is ignored.
    if line.endswith("}") and ",{" in line.replace(" ", ""):
        line = line[: line.rfind("{")].rstrip().rstrip(",")
    cells = split_arff(line, where)
    if len(cells) != len(attrs):
        raise ConvertError(f"{where}: {len(cells)} values, expected {len(attrs)}")
    return {pos: (None if (v == "?" and not q) else v) for pos, (v, q) in enumerate(cells)}


# ---------------------------------------------------------------------------------------------
# CSV


def is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_csv(path, header_mode, delimiter):
    """Same protocol as read_arff. Every column is numeric; the label may be text."""
    with open_text(path) as f:
        rows = csv.reader(f, delimiter=delimiter)
        lines = [(i, r) for i, r in enumerate(rows, 1)]
    lines = [(i, [c.strip() for c in r]) for i, r in lines if r and any(c.strip() for c in r)]
    if not lines:
        raise ConvertError(f"{path}: empty file")
    first = lines[0][1]
    width = len(lines[1][1]) if len(lines) > 1 else len(first)
    if header_mode == "auto":
        if (len(first) >= 2 and len(first) < width and first[0].isdigit()
                and first[1].isdigit()):
            header_mode = "sklearn"
        elif all(is_number(c) for c in first):
            header_mode = "none"
        else:
            header_mode = "names"
    names = [f"column{k}" for k in range(1, width + 1)]
    expect_rows = None
    if header_mode == "names":
        names, lines = first, lines[1:]
    elif header_mode == "sklearn":
        # scikit-learn's bundled CSVs: "n_samples,n_features,class names..."; the target
        # (an integer class index) is the last column.
        try:
            expect_rows, expect_features = int(first[0]), int(first[1])
        except ValueError:
            raise ConvertError(f"{path}:1: not a scikit-learn header: {','.join(first)!r}") from None
        if width != expect_features + 1:
            raise ConvertError(
                f"{path}: header says {expect_features} features, rows have {width - 1} + target")
        names = [f"feature{k}" for k in range(1, expect_features + 1)] + ["target"]
        lines = lines[1:]
    attrs = [(n, "numeric", None) for n in names]
    yield ("header", attrs)
    count = 0
    for lineno, cells in lines:
        if len(cells) != len(attrs):
            raise ConvertError(f"{path}:{lineno}: {len(cells)} fields, expected {len(attrs)}")
        count += 1
        yield ("row", lineno, {p: (None if c in ("", "?") else c) for p, c in enumerate(cells)})
    if expect_rows is not None and count != expect_rows:
        raise ConvertError(f"{path}: header says {expect_rows} rows, found {count}")


# ---------------------------------------------------------------------------------------------


def find_column(attrs, key, what):
    names = [a[0] for a in attrs]
    if key in names:
        return names.index(key)
    if key.isdigit() and 1 <= int(key) <= len(attrs):
        return int(key) - 1
    raise ConvertError(f"{what} {key!r} is neither an attribute name nor a 1-based column number "
                       f"(attributes: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")


def fmt(v):
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def same_label(a, b):
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def convert(args):
    if args.format == "auto":
        lower = args.input.lower()
        fmt_name = "arff" if lower.endswith((".arff", ".arff.gz")) else "csv"
    else:
        fmt_name = args.format
    source = (read_arff(args.input) if fmt_name == "arff"
              else read_csv(args.input, args.csv_header, args.delimiter))

    kind, attrs = next(source)
    assert kind == "header"
    label_pos = len(attrs) - 1 if args.label is None else find_column(attrs, args.label, "--label")
    dropped = {find_column(attrs, d, "--drop") for d in args.drop}
    if label_pos in dropped:
        raise ConvertError("--drop names the label column")

    # Feature layout: (attribute position, first 1-based index, categories or None).
    layout = []
    next_index = 1
    for pos, (name, akind, cats) in enumerate(attrs):
        if pos == label_pos or pos in dropped:
            continue
        if akind == "nominal":
            layout.append((pos, next_index, {c: k for k, c in enumerate(cats)}))
            next_index += len(cats)
        elif akind == "numeric":
            layout.append((pos, next_index, None))
            next_index += 1
        else:
            raise ConvertError(f"attribute {name!r} has type {akind}, which cannot be a feature; "
                               f"leave it out with --drop {name!r}")
    declared = next_index - 1

    label_attr = attrs[label_pos]
    if args.positive is not None and label_attr[1] == "nominal" and args.positive not in label_attr[2]:
        raise ConvertError(f"--positive {args.positive!r} is not a category of {label_attr[0]!r} "
                           f"({', '.join(label_attr[2])})")

    rows = []  # (raw label, feature text); labels are mapped once all are known
    used = 0
    for _, lineno, values in source:
        where = f"{args.input}:{lineno}"
        label = values[label_pos]
        if label is None:
            raise ConvertError(f"{where}: missing label")
        feats = []
        for pos, base, cats in layout:
            v = values[pos]
            if v is None:
                continue
            if cats is not None:
                if v not in cats:
                    raise ConvertError(f"{where}: {v!r} is not a category of {attrs[pos][0]!r}")
                feats.append(f"{base + cats[v]}:1")
                used = max(used, base + cats[v])
            else:
                try:
                    x = float(v)
                except ValueError:
                    raise ConvertError(f"{where}: {attrs[pos][0]!r}: bad number {v!r}") from None
                if not math.isfinite(x):
                    raise ConvertError(f"{where}: {attrs[pos][0]!r}: non-finite value {v!r}")
                if x != 0:
                    feats.append(f"{base}:{fmt(x)}")
                    used = max(used, base)
        rows.append((label, " ".join(feats)))
    if not rows:
        raise ConvertError(f"{args.input}: no data rows")

    if args.positive is not None:
        labels = ["+1" if same_label(l, args.positive) else "-1" for l, _ in rows]
        if "+1" not in labels:
            raise ConvertError(f"no row has label {args.positive!r}")
    else:
        distinct = sorted({l for l, _ in rows})
        try:
            values = tuple(sorted({float(l) for l in distinct}))
        except ValueError:
            values = None
        if values not in ENCODINGS:
            raise ConvertError(f"label values {distinct[:10]} are not -1/+1, 0/1 or 1/2; "
                               f"choose the positive class with --positive VALUE")
        labels = ["+1" if float(l) == values[1] else "-1" for l, _ in rows]
    if len(set(labels)) < 2:
        raise ConvertError("every row has the same label; need two classes")

    if args.full_dim and used < declared:
        # LibSVM cannot declare d; an explicit zero at the last column fixes it for readers
        # (the MARINA reader counts the index towards d and does not store the zero).
        label0, feats0 = rows[0]
        rows[0] = (label0, f"{feats0} {declared}:0".strip())
        used = declared

    out_dir = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".to_libsvm.")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as out:
            for lab, (_, feats) in zip(labels, rows):
                out.write(f"{lab} {feats}\n" if feats else f"{lab}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.output)  # never leave a half-written output behind
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    pos_count = labels.count("+1")
    print(f"{args.output}: {len(rows)} rows x {used} features "
          f"(+1: {pos_count}, -1: {len(rows) - pos_count}; {declared} columns declared)")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="to_libsvm.py",
        description="Convert ARFF (optionally gzip'ed, dense or sparse) or CSV to sparse LibSVM "
                    "with labels -1/+1. Nominal attributes are one-hot encoded; missing values "
                    "('?') leave the feature out.",
        epilog="example: to_libsvm.py data-v1-dl-3.arff.gz -o krvskp.libsvm --label class "
               "--positive won")
    parser.add_argument("input", help="input .arff, .arff.gz or .csv file")
    parser.add_argument("-o", "--output", required=True, help="LibSVM file to write")
    parser.add_argument("--format", choices=["auto", "arff", "csv"], default="auto",
                        help="input format (auto: by file name, .arff[.gz] or else CSV)")
    parser.add_argument("--label", help="label attribute: name or 1-based column (default: last)")
    parser.add_argument("--positive", metavar="VALUE",
                        help="label value that becomes +1; all others become -1")
    parser.add_argument("--drop", action="append", default=[], metavar="NAME",
                        help="leave this attribute out (repeatable)")
    parser.add_argument("--full-dim", action="store_true",
                        help="keep every declared column in d: write an explicit 'D:0' on the "
                             "first row when the last columns are never nonzero")
    parser.add_argument("--csv-header", choices=["auto", "names", "none", "sklearn"],
                        default="auto",
                        help="CSV first line: column names, data, or scikit-learn's "
                             "'n_samples,n_features,class names' (auto: guess)")
    parser.add_argument("--delimiter", default=",", help="CSV field delimiter (default ',')")
    args = parser.parse_args(argv)
    try:
        convert(args)
    except ConvertError as e:
        print(f"to_libsvm.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"to_libsvm.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
