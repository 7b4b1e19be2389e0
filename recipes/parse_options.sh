# Kaldi/WeNet-style option parsing: "--name value" sets the shell variable $name (which must already exist).
while [ $# -gt 0 ]; do
  case "$1" in
    --*=*) name=${1%%=*}; name=${name#--}; value=${1#*=}; shift ;;
    --*) name=${1#--}; value=${2:?"missing value for $1"}; shift 2 ;;
    *) echo "unexpected argument: $1" >&2; exit 1 ;;
  esac
  name=${name//-/_}
  if [ -z "${!name+x}" ]; then echo "unknown option --$name" >&2; exit 1; fi
  printf -v "$name" '%s' "$value"
done
