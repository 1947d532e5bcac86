#!/usr/bin/env bash
# check-tracked.sh fails when git tracks build output: a compiled executable (ELF, Mach-O or PE)
# or any file over 1 MiB. Run by `make test`, so CI refuses them.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
status=0
while IFS= read -r -d '' path; do
	[[ -f "$path" ]] || continue
	size=$(stat -c %s "$path")
	if ((size > limit)); then
		echo "check-tracked: $path is $size bytes (over 1 MiB): build output or data does not belong in git" >&2
		status=1
	fi
	magic=$(head -c 4 "$path" | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | 4d5a*)
		echo "check-tracked: $path is a compiled executable: build output does not belong in git" >&2
		status=1
		;;
	esac
done < <(git ls-files -z)
exit $status
