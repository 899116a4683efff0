# Sourced by the project's shell scripts for their command line:
#
#   source "$repo/scripts/lib/cli.sh"
#   cli_args NAME MAX_OPERANDS "$@"
#
# --help or -h anywhere prints the script's header comment (from its second line to the first
# line that is not a comment) and exits 0 before the script does anything. An argument that
# starts with "-" and is not --help, or more than MAX_OPERANDS operands, is refused with exit 2
# and a message naming it, before anything is installed, built, created or run. MAX_OPERANDS
# "any": the script passes its arguments on (scripts/test.sh to ctest), only --help is its own.

cli_help() {  # prints the header comment of $0 without its "# "
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

cli_args() {
  local name="$1" max="$2" arg operands=0
  shift 2
  for arg in "$@"; do
    case "$arg" in
      -h | --help) cli_help; exit 0 ;;
    esac
  done
  [[ $max == any ]] && return 0
  for arg in "$@"; do
    case "$arg" in
      -*)
        echo "$name: unknown option '$arg' (see $name --help)" >&2
        exit 2
        ;;
      *) operands=$((operands + 1)) ;;
    esac
  done
  if ((operands > max)); then
    if ((max == 0)); then
      echo "$name: takes no arguments, got: $* (see $name --help)" >&2
    else
      echo "$name: at most $max arguments, got $operands: $* (see $name --help)" >&2
    fi
    exit 2
  fi
}
