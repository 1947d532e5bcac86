#!/usr/bin/env bash
# check-tracked.sh fails when git tracks build output: a compiled program (ELF, Mach-O, PE or
# WebAssembly), an executable file that is not a script (no #! line), or any file over 1 MiB.
# It reads what git holds (the index, so a staged file counts as it was added), not the working
# tree. Run by `make test`, so CI refuses them.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
status=0
refuse() {
	echo "check-tracked: $1: build output does not belong in git" >&2
	status=1
}

# Text files as git sees them (no NUL byte near the start): no compiled program is one.
declare -A text=()
while IFS= read -r -d '' path; do
	text[$path]=1
done < <(git grep --cached -I -l -z -e '' || true)

paths=() modes=() objects=()
while IFS= read -r -d '' entry; do
	read -r mode object _ <<<"${entry%%$'\t'*}"
	[[ $mode == 100644 || $mode == 100755 ]] || continue # links and submodules hold no content
	paths+=("${entry#*$'\t'}") modes+=("$mode") objects+=("$object")
done < <(git ls-files -s -z)

i=0
while read -r size; do
	path=${paths[i]} mode=${modes[i]} object=${objects[i]}
	i=$((i + 1))
	if ((size > limit)); then
		refuse "$path is $size bytes (over 1 MiB)"
	fi
	[[ -z ${text[$path]:-} || $mode == 100755 ]] || continue
	# head stops reading after four bytes, which ends git cat-file with SIGPIPE: not a failure.
	magic=$(git cat-file blob "$object" | head -c 4 | od -An -tx1 | tr -d ' \n') || true
	case "$magic" in
	7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | cafebabe | 0061736d | 4d5a*)
		refuse "$path is a compiled program"
		;;
	2321*) ;;
	*) [[ $mode == 100755 ]] && refuse "$path is marked executable but is not a script (no #! line)" ;;
	esac
done < <(printf '%s\n' "${objects[@]}" | git cat-file --batch-check='%(objectsize)')
exit $status
