#!/usr/bin/env bash
# Check the floors (docs/architecture.md, "Layers"): every #include "..." in
# the project's C sources and headers must name a file on the includer's own
# floor or a lower one. Floors, bottom to top:
#
#   0 common/  1 proto/  2 ept/  3 devices/  4 vmm/ (the VM core)
#   5 migration/  6 vmm/ctl/  7 vmm/cli/  8 tests/, bench/, examples/tools/
#   (host tools; may include anything below them)
#
# Test guests (examples/guests/) are freestanding: of the project's files
# they may include only common/guest_abi.h; their own headers (lib/, user/,
# kernel/) are theirs. Build directories (any directory holding a
# CMakeCache.txt) are skipped. Prints one line per violation and exits 1;
# exits 0 with a one-line summary when the floors hold.
set -euo pipefail
cd "$(dirname "$0")/.."

# The floor of a project path ("N layer/"); status 1 when it is on none.
floor_of() {
	case $1 in
	common/*) echo "0 common/" ;;
	proto/*) echo "1 proto/" ;;
	ept/*) echo "2 ept/" ;;
	devices/*) echo "3 devices/" ;;
	vmm/ctl/*) echo "6 vmm/ctl/" ;;
	vmm/cli/*) echo "7 vmm/cli/" ;;
	vmm/*) echo "4 vmm/" ;;
	migration/*) echo "5 migration/" ;;
	tests/*) echo "8 tests/" ;;
	bench/*) echo "8 bench/" ;;
	examples/tools/*) echo "8 examples/tools/" ;;
	*) return 1 ;;
	esac
}

mapfile -t files < <(find . -name .git -prune -o \
	-type d -exec test -e '{}/CMakeCache.txt' \; -prune -o \
	-type f \( -name '*.c' -o -name '*.h' \) -print |
	sed 's|^\./||' | sort)

bad=0
nr_includes=0
declare -A edge # "from>to" -> the first file:line where from includes to

fail() {
	echo "$1"
	bad=$((bad + 1))
}

# A test guest's include: guest-local, or common/guest_abi.h.
check_guest() {
	local where=$1 inc=$2

	if floor_of "$inc" >/dev/null && [[ $inc != common/guest_abi.h ]]; then
		fail "$where: examples/guests/ includes $inc (guests may include only common/guest_abi.h)"
	fi
}

check_include() {
	local file=$1 line=$2 inc=$3 from to ff tf

	if [[ $file == examples/guests/* ]]; then
		check_guest "$file:$line" "$inc"
		return
	fi
	if ! from=$(floor_of "$file"); then
		fail "$file:$line: $file is on no floor (add its directory to scripts/layers.sh)"
		return
	fi
	if ! to=$(floor_of "$inc"); then
		fail "$file:$line: ${from#* } includes \"$inc\", which is on no floor (include it by its path from the source root)"
		return
	fi
	ff=${from%% *} tf=${to%% *}
	from=${from#* } to=${to#* }
	if ((ff < tf)); then
		fail "$file:$line: $from includes $to (higher)"
	elif [[ $from != "$to" && -z ${edge["$from>$to"]+x} ]]; then
		edge["$from>$to"]="$file:$line"
	fi
}

if ((${#files[@]})); then
	while IFS=: read -r file line text; do
		inc=${text#*\"}
		inc=${inc%%\"*}
		nr_includes=$((nr_includes + 1))
		check_include "$file" "$line" "$inc"
	done < <(grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' -- "${files[@]}" || true)
fi

# Two layers on one floor (tests/, bench/) must not include each other.
for e in "${!edge[@]}"; do
	from=${e%>*} to=${e#*>}
	if [[ -n ${edge["$to>$from"]+x} ]]; then
		fail "${edge[$e]}: $from includes $to (which includes $from back)"
	fi
done

if ((bad)); then
	echo "layers: $bad include(s) break the floors (docs/architecture.md, \"Layers\")" >&2
	exit 1
fi
echo "layers: ${#files[@]} files, $nr_includes includes: each floor includes only itself and the floors below"
