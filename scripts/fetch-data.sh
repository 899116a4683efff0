#!/usr/bin/env bash
# Fetches the datasets available offline as Debian packages: the binary-classification ones as
# LibSVM files (labels -1/+1, 1-based sparse features), and digits.csv as plain CSV for the
# multi-class example in examples/mlp-device:
#
#   heart_scale           liblinear-tools  examples/heart_scale (already LibSVM)      270 x 13
#   krvskp.libsvm         python3-sklearn  openml/id_3/data-v1-dl-3.arff.gz (kr-vs-kp chess):
#                         36 nominal attributes one-hot encoded over every declared category;
#                         class 'won' -> +1, 'nowin' -> -1                           3196 x 74
#   breast_cancer.libsvm  python3-sklearn  datasets/data/breast_cancer.csv (first line
#                         "569,30,malignant,benign", target last): 1 (benign) -> +1,
#                         0 (malignant) -> -1                                         569 x 30
#   supermarket.libsvm    weka  examples/supermarket.arff: 216 nominal {t} attributes, 't' ->
#                         feature 1, '?' (not bought) -> absent; label 'total': high -> +1,
#                         low -> -1                                                  4627 x 216
#   digits.csv            python3-sklearn  datasets/data/digits.csv.gz (8x8 handwritten
#                         digits, 64 pixels 0..16 then the class 0..9)     1797 x 64, 10 classes
#
# d is the number of declared columns: kr-vs-kp never uses wtoeg='f' and supermarket's last
# three departments are never bought, so those files end their first row with an explicit
# "d:0" (to_libsvm.py --full-dim); only 122 of supermarket's 216 columns are ever nonzero.
#
# Packages are only downloaded (apt-get download) and unpacked (dpkg-deb -x) in a temporary
# folder, never installed. A dataset whose output exists and is non-empty is skipped.
#
# Usage: scripts/fetch-data.sh [OUT_DIR]     (default: data/ at the repository root)

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/lib/cli.sh"
cli_args fetch-data.sh 1 "$@"
out="${1:-$repo/data}"
python=/usr/bin/python3
converter="$repo/tools/to_libsvm.py"

die() { echo "fetch-data: error: $*" >&2; exit 1; }
for tool in apt-get dpkg-deb "$python"; do
  command -v "$tool" >/dev/null || die "'$tool' not found (this script needs Debian's apt and python3)"
done
[[ -f "$converter" ]] || die "missing $converter"

mkdir -p "$out" || die "cannot create $out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

updated=0
failed=()

# Unpacks PKG into $work/root once. Tries the download first so that a machine whose package
# lists are fresh enough needs no 'apt-get update'; the update may report a failing
# foreign-architecture index, which does not matter for these packages.
unpack() {
  local pkg="$1"
  [[ -e "$work/$pkg.unpacked" ]] && return 0
  mkdir -p "$work/debs"
  if ! (cd "$work/debs" && apt-get download "$pkg") >"$work/$pkg.log" 2>&1; then
    if [[ $updated -eq 0 ]]; then
      echo "fetch-data: 'apt-get download $pkg' failed; running 'apt-get update'" >&2
      apt-get update >"$work/update.log" 2>&1 ||
        echo "fetch-data: warning: 'apt-get update' reported errors (ignored)" >&2
      updated=1
    fi
    if ! (cd "$work/debs" && apt-get download "$pkg") >"$work/$pkg.log" 2>&1; then
      echo "fetch-data: error: cannot download Debian package '$pkg':" >&2
      sed 's/^/  /' "$work/$pkg.log" >&2
      return 1
    fi
  fi
  local deb
  deb="$(ls "$work/debs/${pkg}"_*.deb 2>/dev/null | head -n1)"
  [[ -n "$deb" ]] || { echo "fetch-data: error: no .deb for '$pkg' after download" >&2; return 1; }
  dpkg-deb -x "$deb" "$work/root" || { echo "fetch-data: error: cannot unpack $deb" >&2; return 1; }
  touch "$work/$pkg.unpacked"
}

# A file inside an unpacked package; accepts a gzip'ed copy (Debian compresses large docs).
source_file() {
  local rel="$1"
  if [[ -f "$work/root/$rel" ]]; then
    echo "$work/root/$rel"
  elif [[ -f "$work/root/$rel.gz" ]]; then
    echo "$work/root/$rel.gz"
  else
    echo "fetch-data: error: $rel not found in the package" >&2
    return 1
  fi
}

# "rows x d" of a LibSVM file: data rows, and d = the largest feature index. For a CSV file
# (features then the class last): "rows x d, C classes".
describe() {
  case "$1" in
    *.csv)
      awk -F, 'NF { rows++; d = NF - 1; if (!($NF in seen)) { seen[$NF] = 1; classes++ } }
               END { printf "%d x %d, %d classes", rows, d, classes }' "$1" ;;
    *)
      awk '{ sub(/#.*/, "") } NF { rows++; for (i = 2; i <= NF; i++) { split($i, kv, ":");
             if (kv[1] + 0 > d) d = kv[1] + 0 } }
           END { printf "%d x %d", rows, d }' "$1" ;;
  esac
}

# Runs "make_NAME OUTPUT" unless OUTPUT already exists and is non-empty.
produce() {
  local name="$1" file="$out/$2"
  if [[ -s "$file" ]]; then
    echo "fetch-data: $file exists ($(describe "$file")), skipped"
    return 0
  fi
  if "make_$name" "$file.part" && [[ -s "$file.part" ]]; then
    mv "$file.part" "$file"
    echo "fetch-data: wrote $file ($(describe "$file"))"
  else
    rm -f "$file.part"
    failed+=("$2")
  fi
}

make_heart_scale() {
  unpack liblinear-tools || return 1
  local src
  src="$(source_file usr/share/doc/liblinear-tools/examples/heart_scale)" || return 1
  if [[ "$(head -c2 "$src" | od -An -tx1 | tr -d ' ')" == "1f8b" ]]; then
    gzip -dc "$src" >"$1"
  else
    cp "$src" "$1"
  fi
}

make_krvskp() {
  unpack python3-sklearn || return 1
  local src
  src="$(source_file usr/lib/python3/dist-packages/sklearn/datasets/tests/data/openml/id_3/data-v1-dl-3.arff.gz)" || return 1
  "$python" "$converter" "$src" --format arff -o "$1" --label class --positive won --full-dim >/dev/null
}

make_breast_cancer() {
  unpack python3-sklearn || return 1
  local src
  src="$(source_file usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv)" || return 1
  "$python" "$converter" "$src" --format csv --csv-header sklearn -o "$1" >/dev/null
}

# Kept as sklearn ships it (no header, 65 integers a row), after checking that shape, so that a
# changed upstream file fails here rather than in the example's reader.
make_digits() {
  unpack python3-sklearn || return 1
  local src
  src="$(source_file usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz)" || return 1
  gzip -dc "$src" >"$1" || return 1
  awk -F, 'NF != 65 { bad = NR; exit } END { exit bad ? 1 : 0 }' "$1" || {
    echo "fetch-data: error: $src: a row does not have 65 fields" >&2
    return 1
  }
}

make_supermarket() {
  unpack weka || return 1
  local src
  src="$(source_file usr/share/doc/weka/examples/supermarket.arff)" || return 1
  "$python" "$converter" "$src" --format arff -o "$1" --label total --positive high --full-dim >/dev/null
}

produce heart_scale heart_scale
produce krvskp krvskp.libsvm
produce breast_cancer breast_cancer.libsvm
produce supermarket supermarket.libsvm
produce digits digits.csv

if ((${#failed[@]})); then
  die "could not produce: ${failed[*]}"
fi
