# Sourced by .ci/chromium.sh and .ci/postgres.sh: muninn_apt_install PKG...
# installs system packages with apt-get, one CI run at a time. Two runs
# started side by side on a fresh machine would otherwise both run apt-get:
# dpkg's own lock makes the second one fail (apt-get update does not wait
# for the lists lock), so the runs take a lock of their own (flock), and
# the second finds the packages installed when it gets it.

muninn_apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "apt.sh: apt-get is not available to install $*" >&2
		return 1
	fi
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		sudo=(sudo)
	fi
	local missing=()
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	(
		# Wait as long as an install takes; fail rather than hang forever.
		if command -v flock >/dev/null 2>&1; then
			flock -w 1800 9 || { echo "apt.sh: another CI run held ${TMPDIR:-/tmp}/muninn-ci-apt.lock for 30 minutes" >&2; exit 1; }
		fi
		local still=()
		for p in "${missing[@]}"; do
			dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || still+=("$p")
		done
		[ "${#still[@]}" -eq 0 ] && exit 0
		export DEBIAN_FRONTEND=noninteractive
		local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
		# The lists may be missing or stale on a fresh machine: install from
		# them if they serve, else update them and install again.
		"${sudo[@]}" "${apt[@]}" install -y -qq "${still[@]}" >/dev/null 2>&1 ||
			{ "${sudo[@]}" "${apt[@]}" update -qq && "${sudo[@]}" "${apt[@]}" install -y -qq "${still[@]}" >/dev/null; }
	) 9>"${TMPDIR:-/tmp}/muninn-ci-apt.lock"
}
